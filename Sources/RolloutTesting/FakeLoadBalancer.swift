import Rollout
import Synchronization

/// A load balancer driven by the test: each target's health comes from a script keyed by
/// how many times it was asked since its last (de)registration, and every call is recorded.
/// It also checks the roll's promise: at most one target out of service at any moment.
public final class FakeLoadBalancer: LoadBalancer {
    public enum Call: Equatable, Sendable, CustomStringConvertible {
        case targets
        case health(String)
        case deregister(String)
        case register(String)

        public var description: String {
            switch self {
            case .targets: return "targets"
            case .health(let id): return "health \(id)"
            case .deregister(let id): return "deregister \(id)"
            case .register(let id): return "register \(id)"
            }
        }
    }

    struct State {
        var registered: [Target: Bool]
        var polls: [Target: Int] = [:]
        var calls: [Call] = []
        var maxOut = 0
    }

    private let state: Mutex<State>
    public let targetList: [Target]
    /// States a target reports after DeregisterTargets, poll by poll; the last repeats.
    public let drainScript: @Sendable (Target) -> [TargetObservation]
    /// States a target reports after RegisterTargets, poll by poll; the last repeats.
    public let healthScript: @Sendable (Target) -> [TargetObservation]
    /// Health reported for registered targets in DescribeTargetHealth (preflight).
    public let listedHealth: @Sendable (Target) -> TargetHealth
    /// Errors to throw, by call, before answering.
    public let failure: @Sendable (Call) -> LoadBalancerError?

    public init(targets: [Target],
                drainScript: @escaping @Sendable (Target) -> [TargetObservation] = { _ in
                    [.health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress")), .health(TargetHealth(.unused, reason: "Target.NotRegistered"))] },
                healthScript: @escaping @Sendable (Target) -> [TargetObservation] = { _ in
                    [.health(TargetHealth(.initial, reason: "Elb.RegistrationInProgress")), .health(TargetHealth(.healthy))] },
                listedHealth: @escaping @Sendable (Target) -> TargetHealth = { _ in TargetHealth(.healthy) },
                failure: @escaping @Sendable (Call) -> LoadBalancerError? = { _ in nil }) {
        self.targetList = targets
        self.drainScript = drainScript
        self.healthScript = healthScript
        self.listedHealth = listedHealth
        self.failure = failure
        state = Mutex(State(registered: Dictionary(uniqueKeysWithValues: targets.map { ($0, true) })))
    }

    public var calls: [Call] { state.withLock { $0.calls } }
    /// The most targets ever out of service at once.
    public var maxOutOfService: Int { state.withLock { $0.maxOut } }
    public func isRegistered(_ id: String) -> Bool {
        state.withLock { s in s.registered.first { $0.key.id == id }?.value ?? false }
    }

    private func record(_ call: Call) throws {
        state.withLock { $0.calls.append(call) }
        if let error = failure(call) { throw error }
    }

    public func targets() async throws -> [(target: Target, health: TargetHealth)] {
        try record(.targets)
        return state.withLock { s in
            targetList.filter { s.registered[$0] == true }.map { ($0, listedHealth($0)) }
        }
    }

    public func health(of target: Target) async throws -> TargetObservation {
        try record(.health(target.id))
        return state.withLock { s in
            guard let registered = s.registered[target] else { return .notFound }
            let script = registered ? healthScript(target) : drainScript(target)
            let index = s.polls[target, default: 0]
            s.polls[target] = index + 1
            return script[min(index, script.count - 1)]
        }
    }

    public func deregister(_ target: Target) async throws {
        try record(.deregister(target.id))
        state.withLock { s in
            s.registered[target] = false
            s.polls[target] = 0
            s.maxOut = max(s.maxOut, s.registered.values.filter { !$0 }.count)
        }
    }

    public func register(_ target: Target) async throws {
        try record(.register(target.id))
        state.withLock { s in
            s.registered[target] = true
            s.polls[target] = 0
        }
    }
}
