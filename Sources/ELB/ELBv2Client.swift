import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An error AWS answered (or the transport gave), with what an operator needs to fix it.
public struct AWSError: Error, CustomStringConvertible, Equatable {
    public var code: String
    public var message: String
    public var status: Int
    public var requestID: String?

    public init(code: String, message: String, status: Int, requestID: String? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.requestID = requestID
    }

    /// Throttling, 429 and 5xx heal by themselves; a bad signature or a missing group do not.
    public var isRetryable: Bool {
        if ["Throttling", "ThrottlingException", "RequestLimitExceeded", "PriorRequestNotComplete",
            "HealthUnavailable", "ServiceUnavailable", "InternalFailure", "RequestTimeout", "ConnectionError"].contains(code) {
            return true
        }
        return status == 429 || status >= 500
    }

    /// The account's request limit said no: a reason to slow down, never to give up.
    public var isThrottling: Bool {
        ["Throttling", "ThrottlingException", "RequestLimitExceeded"].contains(code) || status == 429
    }

    public var description: String { "\(code): \(message)" }

    /// Reads both error shapes: `<ErrorResponse><Error>` and moto's `<Response><Errors><Error>`.
    static func parse(_ body: [UInt8], status: Int) -> AWSError {
        guard let root = try? XMLDocument.parse(body), let error = root.descendants("Error").first ?? (root.name == "Error" ? root : nil) else {
            let text = String(decoding: body.prefix(200), as: UTF8.self)
            return AWSError(code: "HTTP\(status)", message: text.isEmpty ? "HTTP \(status) with no body" : text, status: status)
        }
        return AWSError(code: error.value("Code") ?? "HTTP\(status)", message: error.value("Message") ?? "",
                        status: status, requestID: root.value("RequestId") ?? root.value("RequestID"))
    }
}

/// How often to retry what heals by itself: jittered exponential backoff that starts small
/// (so a throttled poll costs less than a poll interval) and is capped.
public struct RetryPolicy: Sendable {
    public var first: Duration
    public var cap: Duration
    public var attempts: Int
    /// With a budget, Throttling slows the budget down and never counts as an attempt (a
    /// roll never fails on it); false for callers that must answer fast (check-config).
    public var outlastsThrottling: Bool

    public init(first: Duration = .milliseconds(100), cap: Duration = .seconds(2), attempts: Int = 8, outlastsThrottling: Bool = true) {
        self.first = first
        self.cap = cap
        self.attempts = attempts
        self.outlastsThrottling = outlastsThrottling
    }

    /// "Full jitter": a random wait between half and all of min(cap, first * 2^attempt).
    public func delay(afterAttempt attempt: Int, random: Double) -> Duration {
        let ceiling = min(cap.seconds, first.seconds * Double(1 << min(attempt, 20)))
        return .seconds(ceiling * (0.5 + 0.5 * random))
    }
}

/// Resolves credentials when asked, refreshing what expires.
public protocol AWSCredentialProvider: Sendable {
    func credentials() async throws -> AWSCredentials
}

/// One AWS service's Query API (form-encoded POST, XML answers), signed with SigV4, with
/// retries for what heals by itself. ELBv2 and EC2 share it.
public struct AWSQueryClient: Sendable {
    public let endpoint: AWSEndpoint
    public let region: String
    public let service: String
    public let version: String
    let credentials: any AWSCredentialProvider
    let transport: any AWSTransport
    let clock: any RolloutClock
    let retry: RetryPolicy
    let random: @Sendable () -> Double
    /// Counts every attempt by action and outcome.
    let metrics: RollMetrics
    /// The account's API budget (of this API, in this region) every call takes a token from
    /// first; nil: none.
    let budget: AWSCallBudget?

    public init(endpoint: AWSEndpoint, region: String, service: String, version: String,
                credentials: any AWSCredentialProvider, transport: any AWSTransport, clock: any RolloutClock,
                retry: RetryPolicy, random: @escaping @Sendable () -> Double, metrics: RollMetrics = RollMetrics(),
                budget: AWSCallBudget? = nil) {
        self.budget = budget
        self.endpoint = endpoint
        self.region = region
        self.service = service
        self.version = version
        self.credentials = credentials
        self.transport = transport
        self.clock = clock
        self.retry = retry
        self.random = random
        self.metrics = metrics
    }

    /// Signs and sends one action, retrying what heals; returns the answer's root element.
    /// With a budget each attempt waits for its token first, and Throttling never ends the
    /// call (the budget slows down instead); only other retryable errors count against
    /// `retry.attempts`. Cancellation (shutdown) ends any wait.
    func call(_ form: QueryForm) async throws -> XMLElement {
        let action = form.pairs[0].1
        let kind = AWSCallBudget.Kind.of(action: action)
        let body = Array(form.encoded.utf8)
        var attempt = 0
        while true {
            if let budget {
                let wait = await budget.reserve(kind)
                if wait > .zero {
                    metrics.awsBudgetWaited(kind: kind.rawValue, duration: wait)
                    CallBudgetReport.current?.delayed(action, wait)
                    try await clock.sleep(for: wait)
                }
            }
            let error: AWSError
            let sent = clock.now
            do {
                let signer = SigV4Signer(credentials: try await credentials.credentials(), region: region, service: service)
                let contentType = ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
                let signed = signer.sign(.init(method: "POST", host: endpoint.hostHeader, path: endpoint.path,
                                               headers: [contentType], body: body), at: clock.now)
                let (status, answer) = try await transport.post(endpoint, headers: [contentType] + signed.headers,
                                                                body: body, timeout: .seconds(10))
                if (200..<300).contains(status) {
                    guard let root = try? XMLDocument.parse(answer) else {
                        metrics.loadBalancerCalled(operation: action, code: "MalformedResponse", duration: clock.now.since(sent))
                        throw AWSError(code: "MalformedResponse", message: "\(action) answered XML that does not parse", status: status)
                    }
                    metrics.loadBalancerCalled(operation: action, code: "ok", duration: clock.now.since(sent))
                    await budget?.succeeded(kind)
                    return root
                }
                error = AWSError.parse(answer, status: status)
            } catch let transportError as TransportError {
                error = AWSError(code: "ConnectionError", message: transportError.description, status: 0)
            }
            metrics.loadBalancerCalled(operation: action, code: error.code, duration: clock.now.since(sent))
            if error.isThrottling, let budget {
                await budget.throttled(kind)
                // The budget paces the next attempt; throttling never fails the call.
                if retry.outlastsThrottling { continue }
            }
            attempt += 1
            guard error.isRetryable, attempt < retry.attempts else { throw error }
            try await clock.sleep(for: retry.delay(afterAttempt: attempt - 1, random: random()))
        }
    }

    func form(_ action: String) -> QueryForm { QueryForm(action: action, version: version) }
}

/// The ELBv2 Query API.
public struct ELBv2Client: Sendable {
    let query: AWSQueryClient

    public init(endpoint: AWSEndpoint, region: String, credentials: any AWSCredentialProvider,
                transport: any AWSTransport, clock: any RolloutClock = SystemClock(),
                retry: RetryPolicy = RetryPolicy(), random: @escaping @Sendable () -> Double = { Double.random(in: 0...1) },
                metrics: RollMetrics = RollMetrics(), budget: AWSCallBudget? = nil) {
        query = AWSQueryClient(endpoint: endpoint, region: region, service: "elasticloadbalancing", version: ELBv2Client.version,
                               credentials: credentials, transport: transport, clock: clock, retry: retry, random: random,
                               metrics: metrics, budget: budget)
    }

    public static let version = "2015-12-01"

    /// The `<ActionResult>` element of an answer.
    func call(_ form: QueryForm) async throws -> XMLElement {
        let root = try await query.call(form)
        let action = form.pairs[0].1
        return root.child("\(action)Result") ?? XMLElement(name: "\(action)Result")
    }

    /// DescribeTargetHealth, naming the targets asked about (or the whole group if none).
    public func describeTargetHealth(targetGroupARN: String, targets: [Target] = []) async throws -> [(target: Target, health: TargetHealth)] {
        var form = query.form("DescribeTargetHealth")
        form.add("TargetGroupArn", targetGroupARN)
        form.addList("Targets", targets.map { [("Id", $0.id), ("Port", String($0.port))] })
        let result = try await call(form)
        return (result.child("TargetHealthDescriptions")?.children("member") ?? []).compactMap { member in
            guard let target = member.child("Target"), let id = target.value("Id") else { return nil }
            let port = target.value("Port").flatMap(Int.init) ?? 0
            let health = member.child("TargetHealth")
            let state = health?.value("State").flatMap(TargetState.init(rawValue:)) ?? .unavailable
            return (Target(id: id, port: port), TargetHealth(state, reason: health?.value("Reason")))
        }
    }

    public func registerTargets(targetGroupARN: String, _ targets: [Target]) async throws {
        var form = query.form("RegisterTargets")
        form.add("TargetGroupArn", targetGroupARN)
        form.addList("Targets", targets.map { [("Id", $0.id), ("Port", String($0.port))] })
        _ = try await call(form)
    }

    public func deregisterTargets(targetGroupARN: String, _ targets: [Target]) async throws {
        var form = query.form("DeregisterTargets")
        form.add("TargetGroupArn", targetGroupARN)
        form.addList("Targets", targets.map { [("Id", $0.id), ("Port", String($0.port))] })
        _ = try await call(form)
    }

    /// What sizes the waits: the group's health check and port.
    public struct TargetGroup: Sendable, Equatable {
        public var arn: String
        public var name: String
        public var port: Int?
        public var targetType: String?
        public var healthCheckInterval: Duration?
        public var healthCheckTimeout: Duration?
        public var healthyThreshold: Int?
    }

    public func describeTargetGroup(arn: String) async throws -> TargetGroup {
        var form = query.form("DescribeTargetGroups")
        form.addList("TargetGroupArns", [arn])
        let result = try await call(form)
        guard let group = result.child("TargetGroups")?.children("member").first else {
            throw AWSError(code: "TargetGroupNotFound", message: "no target group \(arn)", status: 400)
        }
        return TargetGroup(arn: group.value("TargetGroupArn") ?? arn, name: group.value("TargetGroupName") ?? "",
                           port: group.value("Port").flatMap(Int.init), targetType: group.value("TargetType"),
                           healthCheckInterval: group.value("HealthCheckIntervalSeconds").flatMap(Int.init).map { .seconds($0) },
                           healthCheckTimeout: group.value("HealthCheckTimeoutSeconds").flatMap(Int.init).map { .seconds($0) },
                           healthyThreshold: group.value("HealthyThresholdCount").flatMap(Int.init))
    }

    /// ModifyTargetGroup with the health check's interval, timeout and healthy threshold.
    public func modifyHealthCheck(arn: String, _ check: HealthCheckSettings) async throws {
        var form = query.form("ModifyTargetGroup")
        form.add("TargetGroupArn", arn)
        form.add("HealthCheckIntervalSeconds", String(Int64(check.interval.seconds.rounded())))
        form.add("HealthCheckTimeoutSeconds", String(Int64(check.timeout.seconds.rounded())))
        form.add("HealthyThresholdCount", String(check.healthyThreshold))
        _ = try await call(form)
    }

    public func describeTargetGroupAttributes(arn: String) async throws -> [String: String] {
        var form = query.form("DescribeTargetGroupAttributes")
        form.add("TargetGroupArn", arn)
        let result = try await call(form)
        var attributes: [String: String] = [:]
        for member in result.child("Attributes")?.children("member") ?? [] {
            if let key = member.value("Key") { attributes[key] = member.value("Value") ?? "" }
        }
        return attributes
    }
}
