import Rollout

/// One group of a service behind several: a load balancer that can state its timing and
/// its name (for the reasons the combined answers give).
public protocol TargetGroupMember: LoadBalancer, TargetGroupTimed, TargetAddressing {
    var name: String { get }
}

extension ELBLoadBalancer: TargetGroupMember {}

/// A service behind several target groups (`target_group_arns`: a public and an internal
/// load balancer, a blue/green pair of listeners), rolled as one: every target is in every
/// group. A target is taken out of every group, counts as drained once no group sends it
/// requests, and as back once every group calls it healthy; preflight's "the others are
/// healthy" holds in every group, so capacity is kept in each.
public struct TargetGroups: LoadBalancer, TargetGroupTimed, TargetAddressing {
    public let groups: [any TargetGroupMember]

    public init(_ groups: [any TargetGroupMember]) {
        precondition(!groups.isEmpty, "at least one target group")
        self.groups = groups
    }

    /// Every target any group knows, with its state across all of them.
    public func targets() async throws -> [(target: Target, health: TargetHealth)] {
        var perGroup: [[Target: TargetHealth]] = []
        var order: [Target] = []
        for group in groups {
            var seen: [Target: TargetHealth] = [:]
            for (target, health) in try await group.targets() {
                seen[target] = health
                if !order.contains(target) { order.append(target) }
            }
            perGroup.append(seen)
        }
        return order.map { target in
            let observations = perGroup.map { $0[target].map(TargetObservation.health) ?? .notFound }
            guard case .health(let health) = combined(observations) else { return (target, TargetHealth(.unused, reason: "Target.NotRegistered")) }
            return (target, health)
        }
    }

    /// Each group asked at once (each shares its own polls); their answers combined.
    public func health(of target: Target) async throws -> TargetObservation {
        let observations = try await withThrowingTaskGroup(of: (Int, TargetObservation).self) { tasks in
            for (index, group) in groups.enumerated() {
                tasks.addTask { (index, try await group.health(of: target)) }
            }
            var answers = [TargetObservation](repeating: .notFound, count: groups.count)
            for try await (index, observation) in tasks { answers[index] = observation }
            return answers
        }
        return combined(observations)
    }

    /// Deregistered from every group that still has it registered.
    public func deregister(_ target: Target) async throws {
        for group in groups where try await group.health(of: target).isRegistered {
            try await group.deregister(target)
        }
    }

    /// Registered in every group (idempotent in ELB).
    public func register(_ target: Target) async throws {
        for group in groups { try await group.register(target) }
    }

    /// The slowest group's drain and health pass: the waits are sized for the group that
    /// takes longest.
    public func timing() async throws -> GroupTiming {
        var result = GroupTiming()
        for group in groups {
            let timing = try await group.timing()
            result.deregistrationDelay = [result.deregistrationDelay, timing.deregistrationDelay].compactMap { $0 }.max()
            if let pass = timing.healthPass, pass > (result.healthPass ?? .zero) {
                result.healthCheckInterval = timing.healthCheckInterval
                result.healthyThreshold = timing.healthyThreshold
                result.healthCheckTimeout = timing.healthCheckTimeout
            }
            result.slowStart = [result.slowStart, timing.slowStart].compactMap { $0 }.max()
        }
        return result
    }

    public func host(of target: Target) async throws -> String? { try await groups[0].host(of: target) }

    /// One observation from each group's. Out of service only when out of every group: a
    /// target any group may still send requests to is registered (`initial` if only some
    /// groups have it: not serving everywhere, and still to be taken out of the others);
    /// registered everywhere, the worst state of them; registered nowhere, `draining` while
    /// any group drains it, else `unused`. The reason names each group's answer.
    func combined(_ observations: [TargetObservation]) -> TargetObservation {
        func health(_ observation: TargetObservation) -> TargetHealth? {
            if case .health(let health) = observation { return health }
            return nil
        }
        if Set(observations.map { health($0)?.state }).count == 1 {
            guard let first = health(observations[0]) else { return .notFound }
            let reasons = Set(observations.compactMap { health($0)?.reason })
            return .health(TargetHealth(first.state, reason: reasons.count <= 1 ? first.reason : reasons.sorted().joined(separator: "; ")))
        }
        let reason = zip(groups.map(\.name), observations).map { "\($0): \($1)" }.joined(separator: ", ")
        let registered = observations.filter(\.isRegistered)
        if registered.count == observations.count {
            let worst: [TargetState] = [.unhealthy, .unavailable, .initial, .healthy]
            let state = worst.first { state in observations.contains { health($0)?.state == state } } ?? .unavailable
            return .health(TargetHealth(state, reason: reason))
        }
        if !registered.isEmpty { return .health(TargetHealth(.initial, reason: reason)) }
        if let draining = observations.compactMap(health).first(where: { $0.state == .draining || $0.state == .unhealthyDraining }) {
            return .health(TargetHealth(draining.state, reason: reason))
        }
        return .health(TargetHealth(.unused, reason: reason))
    }
}
