#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A registered target: an instance id or IP address, and the port it serves on.
public struct Target: Codable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public var id: String
    public var port: Int

    public init(id: String, port: Int) {
        self.id = id
        self.port = port
    }

    public static func < (a: Target, b: Target) -> Bool { (a.id, a.port) < (b.id, b.port) }
    public var description: String { "\(id):\(port)" }
}

/// ELB's target states, with AWS's spelling.
public enum TargetState: String, Codable, Sendable, CaseIterable {
    case initial, healthy, unhealthy
    case unhealthyDraining = "unhealthy.draining"
    case unused, draining, unavailable
}

public struct TargetHealth: Codable, Sendable, Equatable, CustomStringConvertible {
    public var state: TargetState
    /// ELB's reason code, e.g. `Target.DeregistrationInProgress`.
    public var reason: String?

    public init(_ state: TargetState, reason: String? = nil) {
        self.state = state
        self.reason = reason
    }

    public var description: String { reason.map { "\(state.rawValue) (\($0))" } ?? state.rawValue }
}

/// What DescribeTargetHealth says of one target asked about by id.
public enum TargetObservation: Sendable, Equatable, CustomStringConvertible {
    case health(TargetHealth)
    /// The `InvalidTarget` answer: the load balancer does not know the target (any more).
    case notFound

    public var isDraining: Bool {
        if case .health(let health) = self { return health.state == .draining }
        return false
    }

    public var description: String {
        switch self {
        case .health(let health): return health.description
        case .notFound: return "not registered (InvalidTarget)"
        }
    }
}

public struct LoadBalancerError: Error, CustomStringConvertible, Equatable {
    public var code: String
    public var message: String
    /// Throttling and 5xx heal by themselves; a bad signature does not.
    public var isRetryable: Bool

    public init(code: String, message: String, isRetryable: Bool = false) {
        self.code = code
        self.message = message
        self.isRetryable = isRetryable
    }

    public var description: String { "\(code): \(message)" }
}

/// What a target group says of its own timing, to size the waits from.
public struct GroupTiming: Sendable, Equatable {
    /// `deregistration_delay.timeout_seconds`: how long a deregistered target drains.
    public var deregistrationDelay: Duration?
    public var healthCheckInterval: Duration?
    public var healthCheckTimeout: Duration?
    public var healthyThreshold: Int?
    /// `slow_start.duration_seconds`: a healthy target's traffic ramps up for this long.
    public var slowStart: Duration?

    public init(deregistrationDelay: Duration? = nil, healthCheckInterval: Duration? = nil,
                healthCheckTimeout: Duration? = nil, healthyThreshold: Int? = nil, slowStart: Duration? = nil) {
        self.slowStart = slowStart
        self.deregistrationDelay = deregistrationDelay
        self.healthCheckInterval = healthCheckInterval
        self.healthCheckTimeout = healthCheckTimeout
        self.healthyThreshold = healthyThreshold
    }

    /// Margin on top of what the group itself needs.
    public static let margin: Duration = .seconds(30)

    /// The delay plus a margin: the AWS CLI's fixed 10 minutes times out on delays over 600 s.
    public var drainTimeout: Duration? { deregistrationDelay.map { $0 + GroupTiming.margin } }

    /// A newly registered target's health pass: `threshold` passing checks `interval` apart.
    public var healthPass: Duration? {
        guard let interval = healthCheckInterval, let threshold = healthyThreshold else { return nil }
        return interval * threshold
    }

    /// A new target needs its health pass, the last check up to `timeout` long, plus the margin.
    public var healthyTimeout: Duration? {
        healthPass.map { $0 + (healthCheckTimeout ?? .zero) + GroupTiming.margin }
    }
}

/// A load balancer that can say how long its drains and health checks take.
public protocol TargetGroupTimed: Sendable {
    func timing() async throws -> GroupTiming
}

/// The three settings of a target group's health check that decide how fast a newly
/// registered target is called healthy.
public struct HealthCheckSettings: Sendable, Equatable, CustomStringConvertible {
    public var interval: Duration
    public var timeout: Duration
    public var healthyThreshold: Int

    public init(interval: Duration, timeout: Duration, healthyThreshold: Int) {
        self.interval = interval
        self.timeout = timeout
        self.healthyThreshold = healthyThreshold
    }

    public var description: String {
        "interval \(interval.humanText), timeout \(timeout.humanText), healthy threshold \(healthyThreshold)"
    }
}

/// A load balancer whose health check rollgate may tighten for a roll and put back after
/// (`health_check_during_roll`).
public protocol HealthCheckTunable: Sendable {
    /// Which group: the key its original settings are written down under.
    var targetGroup: String { get }
    func healthCheck() async throws -> HealthCheckSettings
    func setHealthCheck(_ settings: HealthCheckSettings) async throws
}

/// A group's health check as it was before rollgate tightened it, and for which run.
public struct ChangedHealthCheck: Sendable, Equatable {
    public var service: String
    public var targetGroup: String
    public var run: RunID
    public var original: HealthCheckSettings
    public var since: Date

    public init(service: String, targetGroup: String, run: RunID, original: HealthCheckSettings, since: Date) {
        self.service = service
        self.targetGroup = targetGroup
        self.run = run
        self.original = original
        self.since = since
    }
}

/// Where the groups' own health checks are written down while rollgate has them changed.
public protocol HealthCheckLedger: Sendable {
    /// Writes `settings` down as the group's own unless something is written already (a
    /// resumed run: what is there is the original, the group now has the tightened ones);
    /// returns what is written down.
    func noteOriginal(service: String, targetGroup: String, run: RunID, settings: HealthCheckSettings, at: Date) throws -> HealthCheckSettings
    /// The original is back on the group: forget it.
    func originalPutBack(service: String, targetGroup: String) throws
    /// Every group rollgate has changed and not put back yet.
    func changedHealthChecks() throws -> [ChangedHealthCheck]
}

/// A load balancer that can say where a target is, for hooks (`ROLLGATE_TARGET_HOST`):
/// an instance's private address, or an IP target's address itself.
public protocol TargetAddressing: Sendable {
    func host(of target: Target) async throws -> String?
}

/// The port to a target group: the simulated one, the ELBv2 API, or a test fake.
public protocol LoadBalancer: Sendable {
    /// Every target registered in the group with its health (DescribeTargetHealth).
    func targets() async throws -> [(target: Target, health: TargetHealth)]
    /// Health of one target asked about by id and port.
    func health(of target: Target) async throws -> TargetObservation
    func deregister(_ target: Target) async throws
    func register(_ target: Target) async throws
    /// What it can say of its group's timing (deregistration delay, health check); nil: nothing.
    var timed: (any TargetGroupTimed)? { get }
    /// Where its targets are (for `ROLLGATE_TARGET_HOST`); nil: it cannot tell.
    var addressing: (any TargetAddressing)? { get }
    /// Its group's health check, for `health_check_during_roll`; nil: it cannot be changed.
    var healthCheckTuning: (any HealthCheckTunable)? { get }
}

// Each capability defaults to none, and to the load balancer itself when it has it.
extension LoadBalancer {
    public var timed: (any TargetGroupTimed)? { nil }
    public var addressing: (any TargetAddressing)? { nil }
    public var healthCheckTuning: (any HealthCheckTunable)? { nil }
}

extension LoadBalancer where Self: TargetGroupTimed {
    public var timed: (any TargetGroupTimed)? { self }
}

extension LoadBalancer where Self: TargetAddressing {
    public var addressing: (any TargetAddressing)? { self }
}

extension LoadBalancer where Self: HealthCheckTunable {
    public var healthCheckTuning: (any HealthCheckTunable)? { self }
}

/// Told of every answer the load balancer gives a roll (waiter polls, preflight listings), so
/// what viewers see comes from what rollgate already asked, never from asking again.
public protocol TargetObserver: Sendable {
    /// `run`: the run whose roll saw it.
    func observed(service: String, target: Target, observation: TargetObservation, run: RunID?, at: Date)
}

/// Who hears that a load-balancer call waited for the account's API budget (the roll's log:
/// "poll delayed by the AWS call budget"). Set by whoever waits on the load balancer. (A class:
/// an optional closure as a task-local value crashed `swift_task_localValuePush` in a release
/// build of Swift 6.3.1.)
public final class CallBudgetReport: Sendable {
    @TaskLocal public static var current: CallBudgetReport?

    let heard: @Sendable (_ action: String, _ wait: Duration) -> Void

    public init(_ heard: @escaping @Sendable (_ action: String, _ wait: Duration) -> Void) {
        self.heard = heard
    }

    public func delayed(_ action: String, _ wait: Duration) { heard(action, wait) }
}
