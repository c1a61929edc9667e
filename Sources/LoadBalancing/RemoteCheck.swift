import Configuration
import ELB
import Outbound
import Rollout

/// `rollgate check-config --remote`: what linting cannot know. For each service on AWS, the
/// credentials rollgate would use are found and accepted, the target group exists and can be
/// read (DescribeTargetGroups, its attributes, DescribeTargetHealth): the calls a roll starts
/// with. Nothing is changed. Simulated services need nothing.
public struct RemoteCheck: Sendable {
    public struct Finding: Sendable, Equatable {
        public let service: String
        public let ok: Bool
        public let message: String
        /// How long a roll will take and what would make it faster (`RollForecast.summary`),
        /// from the group's settings alone (`rollgate plan` adds the service's history).
        public var forecast: [String] = []
    }

    let config: Config
    let environment: [String: String]
    let http: any OutboundHTTP

    public init(config: Config, environment: [String: String], http: any OutboundHTTP) {
        self.config = config
        self.environment = environment
        self.http = http
    }

    public func run() async -> [Finding] {
        // Fail fast: a check waits seconds, not a roll's patient retries.
        let aws = AWSAccess(settings: config.aws, environment: environment, clock: SystemClock(), metrics: RollMetrics(),
                            http: http, retry: RetryPolicy(first: .milliseconds(100), cap: .milliseconds(500), attempts: 2, outlastsThrottling: false))
        var findings: [Finding] = []
        for service in config.services {
            guard case .awsTargetGroups(let arns) = service.source else {
                findings.append(Finding(service: service.name, ok: true, message: "simulated load balancer: nothing remote to check"))
                continue
            }
            var groups: [ELBLoadBalancer] = []
            for arn in arns {
                switch aws.loadBalancer(for: arn) {
                case .failure(let problem):
                    findings.append(Finding(service: service.name, ok: false, message: problem.description))
                case .success(let loadBalancer):
                    // Several groups get one forecast together (below), not one each.
                    findings.append(await check(service, loadBalancer, forecast: arns.count == 1))
                    groups.append(loadBalancer)
                }
            }
            if groups.count > 1 && groups.count == arns.count {
                findings.append(await checkTogether(service, TargetGroups(groups)))
            }
        }
        return findings
    }

    private func check(_ config: ServiceConfig, _ loadBalancer: ELBLoadBalancer, forecast: Bool) async -> Finding {
        let service = config.name
        let arn = loadBalancer.targetGroupARN
        do {
            _ = try await CredentialChain(environment: environment, http: http).credentials()
        } catch {
            return Finding(service: service, ok: false, message: "\(error)")
        }
        do {
            let timing = try await loadBalancer.timing()
            let targets = try await loadBalancer.targets()
            let healthy = targets.filter { $0.health.state == .healthy }.count
            var message = "\(arn): readable; \(targets.count) target(s) registered, \(healthy) healthy"
            if let delay = timing.deregistrationDelay { message += "; deregistration delay \(delay.humanText)" }
            if targets.count < 2 {
                message += " (with fewer than 2 targets a roll takes the service out of service)"
            }
            var finding = Finding(service: service, ok: true, message: message)
            if forecast {
                finding.forecast = RollForecast(plan: config.plan, timing: timing, targets: targets.count, history: [:]).summary(service: service)
            }
            return finding
        } catch {
            return Finding(service: service, ok: false, message: "\(arn): \(RemoteCheck.explain(error))")
        }
    }

    /// Several groups of one service: every target in each of them (a target in one only
    /// would be registered in the others by a roll), and the forecast of the slowest.
    private func checkTogether(_ config: ServiceConfig, _ groups: TargetGroups) async -> Finding {
        do {
            var members: [Set<Target>] = []
            for group in groups.groups { members.append(Set(try await group.targets().map(\.target))) }
            let all = members.reduce(Set<Target>()) { $0.union($1) }
            let missing = zip(groups.groups, members).flatMap { group, targets in
                all.subtracting(targets).sorted().map { "\($0) is not in \(group.name)" }
            }
            guard missing.isEmpty else {
                return Finding(service: config.name, ok: false, message: "every target must be in each of its target groups: "
                               + missing.joined(separator: "; ") + " (a roll would register it there)")
            }
            var finding = Finding(service: config.name, ok: true,
                                  message: "\(all.count) target(s) in each of \(groups.groups.map(\.name).joined(separator: ", "))")
            finding.forecast = RollForecast(plan: config.plan, timing: try await groups.timing(), targets: all.count, history: [:])
                .summary(service: config.name)
            return finding
        } catch {
            return Finding(service: config.name, ok: false, message: RemoteCheck.explain(error))
        }
    }

    /// AWS's answer, with what to do about the usual ones.
    static func explain(_ error: Error) -> String {
        let text = "\(error)"
        if text.contains("TargetGroupNotFound") { return text + " (is the ARN right, and in this account and region?)" }
        if text.contains("AccessDenied") || text.contains("UnauthorizedOperation") {
            return text + " (the credentials lack a permission; the README lists the IAM policy rollgate needs)"
        }
        if text.contains("InvalidClientTokenId") || text.contains("SignatureDoesNotMatch") || text.contains("ExpiredToken") {
            return text + " (the credentials are not accepted: wrong, revoked or expired)"
        }
        return text
    }
}
