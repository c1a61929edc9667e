/// How one service is rolled: its waits and its hooks. Built from the config.
public struct ServicePlan: Sendable, Equatable {
    public var name: String
    public var pollInterval: Duration
    public var drainTimeout: Duration
    public var healthyTimeout: Duration
    public var hookTimeout: Duration
    public var hooks: HookCommands
    /// Opt-in: a draining target counts as drained once `check` has passed for `quiet`.
    public var fastDrain: FastDrain?
    /// How many targets may be out of service at once (a batch).
    public var maxUnavailable: MaxUnavailable = .count(1)
    /// Opt-in: the first batch is a canary, baked before the rest.
    public var canary: Canary?
    /// Opt-in: the target group's health check tightened for the roll and put back after.
    public var healthCheckDuringRoll: HealthCheckTightening?
    /// What a failed run does: stop as it is, or put the previous good version back.
    public var onFailure: OnFailure = .stop
    /// Waits the config left unset, to be sized from the target group when it can say.
    public var sizeDrainFromGroup = false
    public var sizeHealthyFromGroup = false

    public init(name: String, pollInterval: Duration = .seconds(1), drainTimeout: Duration = .seconds(600),
                healthyTimeout: Duration = .seconds(300), hookTimeout: Duration = .seconds(900),
                hooks: HookCommands) {
        self.name = name
        self.pollInterval = pollInterval
        self.drainTimeout = drainTimeout
        self.healthyTimeout = healthyTimeout
        self.hookTimeout = hookTimeout
        self.hooks = hooks
    }
}

/// Fast drain: after DeregisterTargets, while the load balancer says `draining`, `check` runs
/// every poll (a hook command with the target in its environment, `ROLLGATE_CHECK=fast_drain`)
/// and exits 0 when the app on the target has no request in flight and had none since the poll
/// before. Once it has passed without a break for `quiet`, the target counts as drained
/// although the load balancer still says `draining` (AWS: a draining target with no requests
/// in flight and no connections has already completed its deregistration).
public struct FastDrain: Sendable, Equatable {
    public var check: String
    public var quiet: Duration
    /// `measure_only`: the check runs every poll and the drain's idle share is recorded, but
    /// the drain still waits for the load balancer (what fast drain would save, measured
    /// before it is trusted).
    public var measureOnly: Bool

    public init(check: String, quiet: Duration, measureOnly: Bool = false) {
        self.check = check
        self.quiet = quiet
        self.measureOnly = measureOnly
    }
}

/// `max_unavailable`: a number of targets, or a percentage of the plan's targets (rounded
/// down); never less than 1 and never more than all of them.
public enum MaxUnavailable: Sendable, Equatable, CustomStringConvertible {
    case count(Int)
    case percent(Int)

    public func resolve(total: Int) -> Int {
        let wanted = switch self {
        case .count(let count): count
        case .percent(let percent): total * percent / 100
        }
        return max(1, min(wanted, max(total, 1)))
    }

    /// `2`, `25%`; nil for anything else (0, negative, over 100%).
    public static func parse(_ text: String) -> MaxUnavailable? {
        if text.hasSuffix("%") {
            guard let percent = Int(text.dropLast()), (1...100).contains(percent) else { return nil }
            return .percent(percent)
        }
        guard let count = Int(text), count >= 1 else { return nil }
        return .count(count)
    }

    public var description: String {
        switch self {
        case .count(let count): "\(count)"
        case .percent(let percent): "\(percent)%"
        }
    }
}

/// A canary: the first `targets` targets are rolled, then the run waits `bake` (running
/// `check` every poll, when given: a command that exits 0 while the new version behaves, for
/// example by reading the service's error rate) before the rest; a failed check fails the run
/// there. A promote request (`POST /api/v1/runs/{id}/promote`) ends the bake early.
public struct Canary: Sendable, Equatable {
    public var targets: Int
    public var bake: Duration
    public var check: String?

    public init(targets: Int, bake: Duration, check: String? = nil) {
        self.targets = targets
        self.bake = bake
        self.check = check
    }
}

/// `on_failure`: `stop` leaves a failed run as it is (the failed target left out, the rest on
/// whatever version they run); `rollback` puts the previous good version back on every target
/// the run touched, failed one included.
public enum OnFailure: String, Sendable, Equatable {
    case stop, rollback
}

/// `health_check_during_roll`: while a run rolls, the group checks every `interval` and calls
/// a target healthy after `healthyThreshold` passes (a faster way back into service); the
/// group's own settings are written down first and put back when the run ends, however it
/// ends (a crash: by the resumed run, or at the next start).
public struct HealthCheckTightening: Sendable, Equatable {
    public var interval: Duration
    public var healthyThreshold: Int

    public init(interval: Duration, healthyThreshold: Int) {
        self.interval = interval
        self.healthyThreshold = healthyThreshold
    }

    /// The settings for the roll: the group's timeout is kept unless it is not shorter than
    /// the new interval (ELB refuses that), then it is one second less.
    public func applied(to original: HealthCheckSettings) -> HealthCheckSettings {
        let timeout = original.timeout < interval ? original.timeout : max(.seconds(2), interval - .seconds(1))
        return HealthCheckSettings(interval: interval, timeout: timeout, healthyThreshold: healthyThreshold)
    }
}
