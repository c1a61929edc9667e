/// Polls one target's health until a rule holds or a timeout passes. Unlike the AWS CLI
/// waiters (15 s x 40, fixed), it polls every `pollInterval` and stops at `timeout`.
public struct Waiter: Sendable {
    public enum Rule: String, Sendable {
        /// botocore's `TargetDeregistered`: `unused`, or `InvalidTarget`.
        case drained
        /// botocore's `TargetInService`: `healthy`.
        case inService

        public func isMet(by observation: TargetObservation) -> Bool {
            switch (self, observation) {
            case (.drained, .notFound): return true
            case (.drained, .health(let health)): return health.state == .unused
            case (.inService, .health(let health)): return health.state == .healthy
            case (.inService, .notFound): return false
            }
        }
    }

    public enum Outcome: Sendable, Equatable {
        case met(TargetObservation, after: Duration)
        /// The rule did not hold by the timeout; the last observation, if any poll answered.
        case timedOut(last: TargetObservation?)
    }

    public let clock: any RolloutClock
    public let pollInterval: Duration
    public let timeout: Duration
    /// How long after the start the first poll goes: right away for a wait that may already
    /// be met (a resumed drain), one poll interval after the change for a wait that cannot
    /// be met the moment it starts (draining right after DeregisterTargets, `initial` right
    /// after RegisterTargets), so no call of the account's budget is spent on a known answer.
    public let firstPoll: Duration

    public init(clock: any RolloutClock, pollInterval: Duration, timeout: Duration, firstPoll: Duration = .zero) {
        self.clock = clock
        self.pollInterval = pollInterval
        self.timeout = timeout
        self.firstPoll = firstPoll
    }

    /// `observe` sees every poll's answer, or the retryable error that stood in for one.
    /// Errors that will not heal are thrown; cancellation throws `CancellationError`.
    public func wait(for target: Target, until rule: Rule, on loadBalancer: any LoadBalancer,
                     observe: (Result<TargetObservation, LoadBalancerError>) -> Void = { _ in }) async throws -> Outcome {
        let start = clock.now
        var last: TargetObservation?
        if firstPoll > .zero { try await clock.sleep(for: min(firstPoll, timeout)) }
        while true {
            try Task.checkCancellation()
            do {
                let observation = try await loadBalancer.health(of: target)
                observe(.success(observation))
                last = observation
                if rule.isMet(by: observation) { return .met(observation, after: clock.now.since(start)) }
            } catch let error as LoadBalancerError where error.isRetryable {
                observe(.failure(error))
            }
            let elapsed = clock.now.since(start)
            if elapsed >= timeout { return .timedOut(last: last) }
            try await clock.sleep(for: min(pollInterval, timeout - elapsed))
        }
    }
}
