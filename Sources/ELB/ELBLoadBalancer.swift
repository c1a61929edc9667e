import Rollout

/// A real target group behind the `LoadBalancer` port.
public struct ELBLoadBalancer: LoadBalancer, TargetGroupTimed, TargetAddressing, HealthCheckTunable {
    public let client: ELBv2Client
    public let targetGroupARN: String
    public let ec2: EC2Client?
    /// Health polls of this group asked at about the same time share one call.
    let polls: HealthPolls

    public init(client: ELBv2Client, targetGroupARN: String, ec2: EC2Client? = nil) {
        self.client = client
        self.targetGroupARN = targetGroupARN
        self.ec2 = ec2
        polls = HealthPolls(client: client, targetGroupARN: targetGroupARN)
    }

    /// An instance target's private address (EC2 DescribeInstances); an IP target is its address.
    public func host(of target: Target) async throws -> String? {
        guard target.id.hasPrefix("i-") else { return target.id.contains(".") || target.id.contains(":") ? target.id : nil }
        guard let ec2 else { return nil }
        return try await map { try await ec2.privateAddress(ofInstance: target.id) }
    }

    /// DescribeTargetGroups and DescribeTargetGroupAttributes; also proves the group exists.
    public func timing() async throws -> GroupTiming {
        try await map {
            let group = try await client.describeTargetGroup(arn: targetGroupARN)
            let attributes = try await client.describeTargetGroupAttributes(arn: targetGroupARN)
            return GroupTiming(deregistrationDelay: attributes["deregistration_delay.timeout_seconds"].flatMap(Int.init).map { .seconds($0) },
                               healthCheckInterval: group.healthCheckInterval, healthCheckTimeout: group.healthCheckTimeout,
                               healthyThreshold: group.healthyThreshold,
                               slowStart: attributes["slow_start.duration_seconds"].flatMap(Int.init).map { .seconds($0) })
        }
    }

    public var targetGroup: String { targetGroupARN }

    /// The group's name, from its ARN (`...:targetgroup/NAME/ID`).
    public var name: String {
        let parts = targetGroupARN.split(separator: "/")
        return parts.count >= 2 ? String(parts[parts.count - 2]) : targetGroupARN
    }

    public func healthCheck() async throws -> HealthCheckSettings {
        try await map {
            let group = try await client.describeTargetGroup(arn: targetGroupARN)
            guard let interval = group.healthCheckInterval, let timeout = group.healthCheckTimeout, let threshold = group.healthyThreshold else {
                throw AWSError(code: "MalformedResponse", message: "DescribeTargetGroups gave no health check settings for \(targetGroupARN)", status: 200)
            }
            return HealthCheckSettings(interval: interval, timeout: timeout, healthyThreshold: threshold)
        }
    }

    public func setHealthCheck(_ settings: HealthCheckSettings) async throws {
        try await map { try await client.modifyHealthCheck(arn: targetGroupARN, settings) }
    }

    public func targets() async throws -> [(target: Target, health: TargetHealth)] {
        try await map { try await client.describeTargetHealth(targetGroupARN: targetGroupARN) }
    }

    /// `InvalidTarget` means the group does not know the target (any more): the drain rule's
    /// success. Asked together with every other poll of this group that waits at the moment.
    public func health(of target: Target) async throws -> TargetObservation {
        try await polls.health(of: target)
    }

    public func deregister(_ target: Target) async throws {
        try await map { try await client.deregisterTargets(targetGroupARN: targetGroupARN, [target]) }
    }

    public func register(_ target: Target) async throws {
        try await map { try await client.registerTargets(targetGroupARN: targetGroupARN, [target]) }
    }

    private func map<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as AWSError {
            throw error.asLoadBalancerError
        }
    }
}

extension AWSError {
    /// The port's error for the roll: the code, AWS's words, and whether it heals by itself.
    var asLoadBalancerError: LoadBalancerError { LoadBalancerError(code: code, message: message, isRetryable: isRetryable) }
}

/// The health polls of one target group: those asked while a DescribeTargetHealth of the group
/// is on its way (or waits for its token of the API budget) go together in the next one,
/// naming each target, so a batch's or several runs' waits cost one call per poll, not one
/// per target. One call per group is in flight at a time.
actor HealthPolls {
    let client: ELBv2Client
    let targetGroupARN: String
    private var waiting: [(target: Target, answer: CheckedContinuation<Result<TargetObservation, Error>, Never>)] = []
    private var flushing = false

    init(client: ELBv2Client, targetGroupARN: String) {
        self.client = client
        self.targetGroupARN = targetGroupARN
    }

    func health(of target: Target) async throws -> TargetObservation {
        let result = await withCheckedContinuation { continuation in
            waiting.append((target, continuation))
            if !flushing {
                flushing = true
                Task { await self.flush() }
            }
        }
        return try result.get()
    }

    private func flush() async {
        while !waiting.isEmpty {
            let batch = waiting
            waiting = []
            var targets: [Target] = []
            for entry in batch where !targets.contains(entry.target) { targets.append(entry.target) }
            let answers = await describe(targets)
            for entry in batch { entry.answer.resume(returning: answers[entry.target] ?? .success(.notFound)) }
        }
        flushing = false
    }

    private func describe(_ targets: [Target]) async -> [Target: Result<TargetObservation, Error>] {
        do {
            let answer = try await client.describeTargetHealth(targetGroupARN: targetGroupARN, targets: targets)
            var results: [Target: Result<TargetObservation, Error>] = [:]
            for target in targets {
                let sameID = answer.filter { $0.target.id == target.id }
                let entry = sameID.first { $0.target.port == target.port } ?? (sameID.count == 1 ? sameID.first : nil)
                results[target] = .success(entry.map { .health($0.health) } ?? .notFound)
            }
            return results
        } catch let error as AWSError where error.code == "InvalidTarget" {
            // One target the group does not know fails the whole call: ask each on its own.
            guard targets.count > 1 else { return [targets[0]: .success(.notFound)] }
            var results: [Target: Result<TargetObservation, Error>] = [:]
            for target in targets { results[target] = (await describe([target]))[target] }
            return results
        } catch let error as AWSError {
            let failure = error.asLoadBalancerError
            return Dictionary(uniqueKeysWithValues: targets.map { ($0, .failure(failure)) })
        } catch {
            return Dictionary(uniqueKeysWithValues: targets.map { ($0, .failure(error)) })
        }
    }
}
