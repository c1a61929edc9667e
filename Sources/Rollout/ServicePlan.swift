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

    public init(check: String, quiet: Duration) {
        self.check = check
        self.quiet = quiet
    }
}
