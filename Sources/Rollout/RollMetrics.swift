import CoreMetrics

/// What the roll, the queue and the load-balancer clients count as it happens, through
/// swift-metrics: the server hands in a factory that feeds its Prometheus registry, tests a
/// recording one; by default nothing is kept. Each metric's name is a `RollMetrics.Name`, so
/// the exporter can give every one its help text and buckets.
public struct RollMetrics: Sendable {
    public enum Name: String, Sendable, CaseIterable {
        case runsFinished = "rollgate_runs_finished_total"
        case runSeconds = "rollgate_run_duration_seconds"
        case targetSeconds = "rollgate_target_duration_seconds"
        case outOfServiceSeconds = "rollgate_target_out_of_service_seconds"
        case waiterPolls = "rollgate_waiter_polls_total"
        case waiterLagSeconds = "rollgate_waiter_observed_lag_seconds"
        case hooks = "rollgate_hooks_total"
        case hookSeconds = "rollgate_hook_duration_seconds"
        case loadBalancerCalls = "rollgate_load_balancer_calls_total"
        case loadBalancerCallSeconds = "rollgate_load_balancer_call_duration_seconds"
        case awsBudgetWaitSeconds = "rollgate_aws_budget_wait_seconds"
    }

    public let factory: any MetricsFactory

    public init(factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.factory = factory
    }

    /// A run reached an end state (superseded and cancelled-while-queued included);
    /// `duration` from its start, for runs that started.
    public func runEnded(service: String, status: RunStatus, duration: Duration?) {
        count(.runsFinished, ["service": service, "outcome": status.rawValue])
        if let duration {
            time(.runSeconds, duration, ["service": service, "outcome": status.rawValue])
        }
    }

    /// A target is back in service: how long its roll took and how long it served nothing
    /// (from DeregisterTargets to healthy), when this process knows.
    public func targetRolled(service: String, duration: Duration, outOfService: Duration?) {
        time(.targetSeconds, duration, ["service": service])
        if let outOfService { time(.outOfServiceSeconds, outOfService, ["service": service]) }
    }

    /// One waiter poll: whether the load balancer answered, and whether the rule then held.
    public func waiterPolled(service: String, rule: Waiter.Rule, result: String) {
        count(.waiterPolls, ["service": service, "rule": rule.rawValue, "result": result])
    }

    /// How late, at most, the waiter saw the change: the time since the poll before the one
    /// that saw it.
    public func waiterNoticed(service: String, rule: Waiter.Rule, lag: Duration) {
        time(.waiterLagSeconds, lag, ["service": service, "rule": rule.rawValue])
    }

    public func hookEnded(service: String, phase: Phase, outcome: HookOutcome, duration: Duration) {
        let result: String = switch outcome {
        case .exited(let code): "exit_\(code)"
        case .signalled(let signal): "signal_\(signal)"
        case .timedOut: "timeout"
        case .couldNotStart: "not_started"
        }
        count(.hooks, ["service": service, "phase": phase.rawValue, "result": result])
        time(.hookSeconds, duration, ["service": service, "phase": phase.rawValue])
    }

    /// One call on the load balancer's API (each retry counts): `code` is `ok` or the error's code.
    public func loadBalancerCalled(operation: String, code: String, duration: Duration) {
        count(.loadBalancerCalls, ["operation": operation, "code": code])
        time(.loadBalancerCallSeconds, duration, ["operation": operation])
    }

    /// A call waited for its token of the AWS call budget (`describe` or `change`).
    public func awsBudgetWaited(kind: String, duration: Duration) {
        time(.awsBudgetWaitSeconds, duration, ["kind": kind])
    }

    private func count(_ name: Name, _ dimensions: KeyValuePairs<String, String>) {
        count(name.rawValue, dimensions.map { ($0.key, $0.value) })
    }

    private func time(_ name: Name, _ duration: Duration, _ dimensions: KeyValuePairs<String, String>) {
        time(name.rawValue, duration, dimensions.map { ($0.key, $0.value) })
    }

    /// For metrics named outside the roll (HTTP, notifications): the same factory.
    public func count(_ label: String, _ dimensions: [(String, String)], by amount: Int = 1) {
        Counter(label: label, dimensions: dimensions, factory: factory).increment(by: amount)
    }

    public func time(_ label: String, _ duration: Duration, _ dimensions: [(String, String)]) {
        let (seconds, attoseconds) = duration.components
        Timer(label: label, dimensions: dimensions, factory: factory)
            .recordNanoseconds(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
    }
}
