#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One simulated target as stored: registered or not, and since when.
public struct SimulatedTarget: Sendable, Equatable {
    public var target: Target
    public var registered: Bool
    public var changedAt: Date
    /// A target whose health checks fail once a deploy registers it again (a broken build).
    public var failsHealthChecks: Bool

    public init(target: Target, registered: Bool, changedAt: Date, failsHealthChecks: Bool = false) {
        self.target = target
        self.registered = registered
        self.changedAt = changedAt
        self.failsHealthChecks = failsHealthChecks
    }
}

/// Where the simulated load balancer keeps its state, so a restart sees what it would still say.
public protocol SimulatedTargetStore: Sendable {
    func simulatedTargets(service: String) throws -> [SimulatedTarget]
    func saveSimulatedTarget(service: String, _ target: SimulatedTarget) throws
}

public struct SimulationSettings: Sendable, Equatable {
    public var targets: Int
    public var drainTime: Duration
    public var healthyTime: Duration
    public var port: Int
    /// Target ids whose health checks fail once a deploy registers them again (a broken
    /// build); until then they serve, healthy.
    public var unhealthyTargets: Set<String>

    public init(targets: Int = 3, drainTime: Duration = .seconds(3), healthyTime: Duration = .seconds(2),
                port: Int = 80, unhealthyTargets: Set<String> = []) {
        self.targets = targets
        self.drainTime = drainTime
        self.healthyTime = healthyTime
        self.port = port
        self.unhealthyTargets = unhealthyTargets
    }
}

extension SimulationSettings {
    /// The simulation's timing as a target group would state it: the drain as its
    /// deregistration delay, becoming healthy as one check.
    public var groupTiming: GroupTiming {
        GroupTiming(deregistrationDelay: drainTime, healthCheckInterval: healthyTime, healthCheckTimeout: .zero, healthyThreshold: 1)
    }
}

/// A target group with ELB's states and timing: a deregistered target is `draining` for
/// `drainTime`, then `unused` (and leaves the group's list); a registered one is `initial`
/// for `healthyTime`, then `healthy` (or `unhealthy` if its checks fail).
public struct SimulatedLoadBalancer: LoadBalancer {
    public let service: String
    public let settings: SimulationSettings
    let store: any SimulatedTargetStore
    let clock: any RolloutClock
    let health: StoreHealth
    /// Where its reads and writes of the database wait (the store's threads, never Swift's
    /// pool); nil: where called (tests).
    let work: BlockingWork?

    public init(service: String, settings: SimulationSettings, store: any SimulatedTargetStore,
                clock: any RolloutClock, health: StoreHealth = StoreHealth(), work: BlockingWork? = nil) throws {
        self.service = service
        self.settings = settings
        self.store = store
        self.clock = clock
        self.health = health
        self.work = work
        try seed()
    }

    /// When seeded targets were "registered": long ago, so they start healthy.
    static let seededAt = Date(timeIntervalSince1970: 0)

    /// Target ids are `<service>-1` ... `<service>-N`; missing ones start registered and healthy.
    public static func targetIDs(service: String, count: Int) -> [String] {
        (0..<count).map { "\(service)-\($0 + 1)" }
    }

    private func seed() throws {
        let existing = Set(try store.simulatedTargets(service: service).map(\.target.id))
        for id in SimulatedLoadBalancer.targetIDs(service: service, count: settings.targets) where !existing.contains(id) {
            try store.saveSimulatedTarget(service: service, SimulatedTarget(
                target: Target(id: id, port: settings.port), registered: true,
                changedAt: SimulatedLoadBalancer.seededAt,
                failsHealthChecks: settings.unhealthyTargets.contains(id)))
        }
    }

    /// Its targets as stored, read on the store's threads.
    private func current() async throws -> [SimulatedTarget] {
        let store = self.store, service = self.service, wanted = Set(SimulatedLoadBalancer.targetIDs(service: service, count: settings.targets))
        let unhealthy = settings.unhealthyTargets
        return try await work.run { try store.simulatedTargets(service: service).filter { wanted.contains($0.target.id) } }
            .map { var t = $0; t.failsHealthChecks = unhealthy.contains(t.target.id); return t }
    }

    func health(_ target: SimulatedTarget, at now: Date) -> TargetHealth {
        let elapsed = now.since(target.changedAt)
        if target.registered {
            if elapsed < settings.healthyTime { return TargetHealth(.initial, reason: "Elb.RegistrationInProgress") }
            return target.failsHealthChecks && target.changedAt != SimulatedLoadBalancer.seededAt
                ? TargetHealth(.unhealthy, reason: "Target.FailedHealthChecks")
                : TargetHealth(.healthy)
        }
        if elapsed < settings.drainTime { return TargetHealth(.draining, reason: "Target.DeregistrationInProgress") }
        return TargetHealth(.unused, reason: "Target.NotRegistered")
    }

    public func targets() async throws -> [(target: Target, health: TargetHealth)] {
        let now = clock.now
        return try await current().compactMap { simulated in
            let health = health(simulated, at: now)
            return health.state == .unused ? nil : (simulated.target, health)
        }
    }

    public func health(of target: Target) async throws -> TargetObservation {
        guard let simulated = try await current().first(where: { $0.target == target }) else { return .notFound }
        return .health(health(simulated, at: clock.now))
    }

    public func deregister(_ target: Target) async throws {
        try await change(target, registered: false)
    }

    public func register(_ target: Target) async throws {
        try await change(target, registered: true)
    }

    /// The simulation keeps its state in rollgate's database: a write that fails there is
    /// retried, as ELB's own 5xx answers are, never a failed roll.
    private func change(_ target: Target, registered: Bool) async throws {
        guard var simulated = try await current().first(where: { $0.target == target }) else {
            throw LoadBalancerError(code: "InvalidTarget", message: "\(target) is not a target of the simulated group \(service)")
        }
        // Deregistering a draining target, or registering a registered one, changes nothing (as on ELB).
        guard simulated.registered != registered else { return }
        simulated.registered = registered
        simulated.changedAt = clock.now
        let store = self.store, service = self.service, changed = simulated
        try await DurableWrite(clock: clock, health: health, work: work).performBlocking("simulated \(registered ? "RegisterTargets" : "DeregisterTargets")") {
            try store.saveSimulatedTarget(service: service, changed)
        }
    }
}
