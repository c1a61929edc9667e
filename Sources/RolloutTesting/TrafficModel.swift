import Rollout
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A load balancer with users behind it, on the test's clock, to prove a roll drops no
/// request (issue 9). Everything that happens is recorded with its time; the users' traffic
/// is then played over that timeline, exactly and deterministically:
///
/// - a request arrives every `requestEvery` and lasts `requestTakes`; the load balancer sends
///   it, round-robin, to a target it routes to at that moment;
/// - it routes to a target that is registered and has passed its health check (`healthPass`
///   after RegisterTargets), and, for `propagation` after DeregisterTargets, still to a
///   deregistered one (a real ALB took 13 s to stop, as the post measured);
/// - a deregistered target is `draining` for `deregistrationDelay`, then `unused`; requests
///   already in flight on it finish (that is what draining is for);
/// - the app on each target is up or down; the deploy hook (through `app(_:)`) stops and
///   starts it. A request that meets a down app at any moment of its life is a user's error;
///   so is one that arrives when no target is routed to.
public final class TrafficModel: LoadBalancer, TargetGroupTimed, Sendable {
    public struct Settings: Sendable {
        public var requestEvery: Duration = .milliseconds(100)
        public var requestTakes: Duration = .milliseconds(250)
        public var propagation: Duration = .seconds(13)
        public var deregistrationDelay: Duration = .seconds(300)
        public var healthPass: Duration = .seconds(5)
        /// What RegisterTargets does to a target still `draining`: instance targets cancel the
        /// drain; IP targets keep draining until the delay is over (then register again).
        public var registerWhileDraining: RegisterWhileDraining = .cancelsDrain

        public init() {}
    }

    public enum RegisterWhileDraining: Sendable { case cancelsDrain, isIgnored }

    enum Change: Sendable {
        case registered, deregistered, appStopped, appStarted
    }

    struct State {
        var timeline: [(at: Date, target: Target, change: Change)] = []
        var versions: [Target: String] = [:]
    }

    public let settings: Settings
    public let targetList: [Target]
    let clock: any RolloutClock
    let start: Date
    private let state = Mutex(State())

    /// `clock`: the test's ManualClock, or the system clock for a benchmark in real time.
    public init(targets: [Target], clock: any RolloutClock, settings: Settings = Settings(), version: String = "v1") {
        self.targetList = targets.sorted()
        self.clock = clock
        self.settings = settings
        // Everything starts registered, healthy and serving, well before the roll.
        start = clock.now.adding(.seconds(-3600))
        state.withLock { s in
            for target in targets {
                s.timeline.append((start, target, .registered))
                s.versions[target] = version
            }
        }
    }

    // MARK: - The app on each target (what hooks do)

    /// Stops the target's app now (the deploy hook's first half).
    public func stopApp(_ target: Target) { record(target, .appStopped) }

    /// Starts the target's app now at `version`.
    public func startApp(_ target: Target, version: String) {
        record(target, .appStarted)
        state.withLock { $0.versions[target] = version }
    }

    public func version(of target: Target) -> String? { state.withLock { $0.versions[target] } }

    /// Whether the app on the target has no request in flight now and was sent none in the
    /// last `window`: what a fast-drain check command reports.
    public func isQuiet(_ target: Target, window: Duration) -> Bool {
        let now = clock.now
        return !requests(until: now).contains { request in
            request.target == target && (request.at.adding(settings.requestTakes) > now || request.at > now.adding(.zero - window))
        }
    }

    private func record(_ target: Target, _ change: Change) {
        let now = clock.now
        state.withLock { $0.timeline.append((now, target, change)) }
    }

    // MARK: - What the users saw

    public struct Request: Sendable, Equatable {
        public let at: Date
        /// Nil when no target was routed to.
        public let target: Target?
        public let failed: Bool
    }

    /// Every request from the roll's start (an hour of quiet before it is not played) until `end`.
    public func requests(until end: Date) -> [Request] {
        let timeline = state.withLock { $0.timeline }
        let from = timeline.filter { $0.at > start }.map(\.at).min() ?? end
        var requests: [Request] = []
        var turn = 0
        var at = from.adding(.zero - settings.propagation - settings.requestTakes)
        while at <= end {
            let routed = targetList.filter { routes(to: $0, at: at, timeline) }
            if routed.isEmpty {
                requests.append(Request(at: at, target: nil, failed: true))
            } else {
                let target = routed[turn % routed.count]
                turn += 1
                let finishes = at.adding(settings.requestTakes)
                requests.append(Request(at: at, target: target, failed: !appUp(target, from: at, to: min(finishes, end), timeline)))
            }
            at = at.adding(settings.requestEvery)
        }
        return requests
    }

    /// Requests users lost so far: sent to a down app, or to no target at all.
    public var droppedRequests: Int { requests(until: clock.now).filter(\.failed).count }

    /// The most targets out of service at once (not routed to) since the roll began.
    public var maxOutOfService: Int {
        let timeline = state.withLock { $0.timeline }
        let moments = timeline.filter { $0.at > start }.flatMap { [$0.at, $0.at.adding(settings.healthPass), $0.at.adding(settings.propagation)] }
        return moments.map { moment in
            targetList.filter { !inService($0, at: moment, timeline) }.count
        }.max() ?? 0
    }

    private func last(_ target: Target, before at: Date, _ timeline: [(at: Date, target: Target, change: Change)],
                      _ kinds: Set<Change>) -> (at: Date, change: Change)? {
        timeline.last { $0.target == target && $0.at <= at && kinds.contains($0.change) }.map { ($0.at, $0.change) }
    }

    /// Registered for good (not draining) and past its health check.
    private func inService(_ target: Target, at: Date, _ timeline: [(at: Date, target: Target, change: Change)]) -> Bool {
        guard let registration = effectiveRegistration(target, at: at, timeline) else { return false }
        return at >= registration.adding(settings.healthPass)
    }

    /// When the target's current registration took effect, if it is registered at `at`.
    private func effectiveRegistration(_ target: Target, at: Date, _ timeline: [(at: Date, target: Target, change: Change)]) -> Date? {
        var registeredAt: Date?
        var deregisteredAt: Date?
        for entry in timeline where entry.target == target && entry.at <= at {
            switch entry.change {
            case .registered:
                if let out = deregisteredAt, settings.registerWhileDraining == .isIgnored,
                   entry.at < out.adding(settings.deregistrationDelay) {
                    continue   // still draining: the registration does not take
                }
                registeredAt = entry.at
                deregisteredAt = nil
            case .deregistered:
                if registeredAt != nil { deregisteredAt = entry.at }
                registeredAt = nil
            default: break
            }
        }
        return registeredAt
    }

    private func routes(to target: Target, at: Date, _ timeline: [(at: Date, target: Target, change: Change)]) -> Bool {
        if inService(target, at: at, timeline) { return true }
        // Deregistered moments ago: the load balancer still sends it traffic.
        guard let out = last(target, before: at, timeline, [.registered, .deregistered]), out.change == .deregistered,
              at < out.at.adding(settings.propagation) else { return false }
        return inService(target, at: out.at.adding(.zero - .milliseconds(1)), timeline)
    }

    private func appUp(_ target: Target, from: Date, to: Date, _ timeline: [(at: Date, target: Target, change: Change)]) -> Bool {
        if last(target, before: from, timeline, [.appStopped, .appStarted])?.change == .appStopped { return false }
        return !timeline.contains { $0.target == target && $0.change == .appStopped && $0.at > from && $0.at < to }
    }

    // MARK: - The load balancer's API

    public func timing() async throws -> GroupTiming {
        GroupTiming(deregistrationDelay: settings.deregistrationDelay, healthCheckInterval: settings.healthPass,
                    healthCheckTimeout: .zero, healthyThreshold: 1)
    }

    public func targets() async throws -> [(target: Target, health: TargetHealth)] {
        let observations = targetList.map { ($0, observe($0)) }
        return observations.compactMap { target, observation in
            guard case .health(let health) = observation, health.state != .unused else { return nil }
            return (target, health)
        }
    }

    public func health(of target: Target) async throws -> TargetObservation { observe(target) }

    public func deregister(_ target: Target) async throws { record(target, .deregistered) }

    public func register(_ target: Target) async throws { record(target, .registered) }

    private func observe(_ target: Target) -> TargetObservation {
        let now = clock.now
        let timeline = state.withLock { $0.timeline }
        if let registration = effectiveRegistration(target, at: now, timeline) {
            if now < registration.adding(settings.healthPass) { return .health(TargetHealth(.initial, reason: "Elb.RegistrationInProgress")) }
            let down = last(target, before: now, timeline, [.appStopped, .appStarted])?.change == .appStopped
            return .health(down ? TargetHealth(.unhealthy, reason: "Target.FailedHealthChecks") : TargetHealth(.healthy))
        }
        guard let out = last(target, before: now, timeline, [.deregistered]) else { return .notFound }
        if now < out.at.adding(settings.deregistrationDelay) { return .health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress")) }
        return .health(TargetHealth(.unused, reason: "Target.NotRegistered"))
    }
}

/// Runs hooks against a traffic model: `deploy` stops the target's app, sleeps `deployTakes`
/// on the clock, and starts it at the run's version; a command `quiet-check` (the fast-drain
/// check) exits 0 when the app has no request in flight and had none in the last `window`;
/// `stop-app` stops the app; `fail` exits 1; any other command just succeeds. `brokenStopsEarly` makes the prepare hook stop the app
/// (a broken roll, before any drain) to show the model catches it.
public final class TrafficModelExecutor: HookExecutor {
    let model: TrafficModel
    let clock: any RolloutClock
    let deployTakes: Duration
    let window: Duration
    private let invocations = Mutex<[HookInvocation]>([])

    public init(model: TrafficModel, clock: any RolloutClock, deployTakes: Duration = .seconds(5), window: Duration = .seconds(1)) {
        self.model = model
        self.clock = clock
        self.deployTakes = deployTakes
        self.window = window
    }

    public var recorded: [HookInvocation] { invocations.withLock { $0 } }

    public func run(_ hook: HookInvocation, started: @escaping @Sendable (HookProcess) -> Void,
                    output: @escaping @Sendable (LogLine.Stream, [String]) -> Void) async -> HookOutcome {
        invocations.withLock { $0.append(hook) }
        started(HookProcess(group: 4242))
        guard let id = hook.environment["ROLLGATE_TARGET_ID"], let target = model.targetList.first(where: { $0.id == id }) else {
            return .couldNotStart("no target")
        }
        switch hook.command {
        case "quiet-check":
            return model.isQuiet(target, window: window) ? .exited(0) : .exited(1)
        case "stop-app":
            model.stopApp(target)
            return .exited(0)
        case "fail":
            output(.stderr, ["error rate too high"])
            return .exited(1)
        default:
            guard hook.phase == .deploy else { return .exited(0) }
            model.stopApp(target)
            try? await clock.sleep(for: deployTakes)
            model.startApp(target, version: hook.environment["ROLLGATE_VERSION"] ?? "?")
            output(.stdout, ["deployed \(hook.environment["ROLLGATE_VERSION"] ?? "?") on \(id)"])
            return .exited(0)
        }
    }

    public func endLeftover(_ process: HookProcess, of run: RunID) -> Int { 0 }
}
