import Rollout

/// A real target group behind the `LoadBalancer` port.
public struct ELBLoadBalancer: LoadBalancer, TargetGroupTimed, TargetAddressing {
    public let client: ELBv2Client
    public let targetGroupARN: String
    public let ec2: EC2Client?

    public init(client: ELBv2Client, targetGroupARN: String, ec2: EC2Client? = nil) {
        self.client = client
        self.targetGroupARN = targetGroupARN
        self.ec2 = ec2
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
                               healthyThreshold: group.healthyThreshold)
        }
    }

    public func targets() async throws -> [(target: Target, health: TargetHealth)] {
        try await map { try await client.describeTargetHealth(targetGroupARN: targetGroupARN) }
    }

    /// `InvalidTarget` means the group does not know the target (any more): the drain rule's success.
    public func health(of target: Target) async throws -> TargetObservation {
        do {
            let answer = try await client.describeTargetHealth(targetGroupARN: targetGroupARN, targets: [target])
            guard let entry = answer.first(where: { $0.target.id == target.id }) else { return .notFound }
            return .health(entry.health)
        } catch let error as AWSError where error.code == "InvalidTarget" {
            return .notFound
        } catch let error as AWSError {
            throw LoadBalancerError(code: error.code, message: error.message, isRetryable: error.isRetryable)
        }
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
            throw LoadBalancerError(code: error.code, message: error.message, isRetryable: error.isRetryable)
        }
    }
}
