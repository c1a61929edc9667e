/// Why a run failed: a stable code set where the failure happened (clients branch on it;
/// the API sends it as `error_code` beside `error`), and the words an operator reads.
public struct RunFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        /// Another target was not healthy: taking this one out would cost capacity.
        case preflightUnhealthy = "preflight_unhealthy"
        /// A target did not drain in `drain_timeout` (or could not be registered again).
        case drainTimeout = "drain_timeout"
        /// A target did not turn healthy in `healthy_timeout`.
        case healthTimeout = "health_timeout"
        /// A prepare, deploy or verify hook failed.
        case hookFailed = "hook_failed"
        /// The canary's check failed during the bake.
        case canaryCheckFailed = "canary_check_failed"
        /// The instance's address for `ROLLGATE_TARGET_HOST` could not be looked up.
        case targetAddressUnknown = "target_address_unknown"
        /// The target group has no registered targets.
        case noTargets = "no_targets"
        /// The load balancer refused or failed a call (the target group unreadable, access denied).
        case loadBalancer = "load_balancer_error"
        /// The health check could not be tightened for the roll (`health_check_during_roll`).
        case healthCheckChange = "health_check_change_failed"
        /// The run's service is no longer in the config.
        case serviceNotConfigured = "service_not_configured"
        /// Interrupted too often without finishing a target; not resumed again.
        case interruptedTooOften = "interrupted_too_often"
        /// Anything else (the error's own words say what).
        case unexpected = "unexpected"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The same failure with more said after it (what a rollback did).
    public func adding(_ more: String) -> RunFailure { RunFailure(code, message + more) }

    public var description: String { message }
}
