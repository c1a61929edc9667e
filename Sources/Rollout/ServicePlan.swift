/// How one service is rolled: its waits and its hooks. Built from the config.
public struct ServicePlan: Sendable, Equatable {
    public var name: String
    public var pollInterval: Duration
    public var drainTimeout: Duration
    public var healthyTimeout: Duration
    public var hookTimeout: Duration
    public var hooks: HookCommands
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
