/// Where the roll of one target picks up. The order is the roll's own: preflight and
/// prepare, drain, deploy, verify, restore.
public enum ResumePoint: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    /// Preflight, then the prepare hook: the target may still be serving.
    case start
    /// DeregisterTargets if the target is still registered, then wait until drained.
    case drain
    case deploy
    case verify
    /// RegisterTargets (idempotent) and wait until healthy.
    case restore

    public static func < (a: ResumePoint, b: ResumePoint) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .start: return "from the start (preflight and prepare)"
        case .drain: return "from the drain"
        case .deploy: return "by running the deploy hook again"
        case .verify: return "by running the verify hook again"
        case .restore: return "by registering it and waiting until healthy"
        }
    }

    /// The point that runs `phase` again.
    init(phase: Phase) {
        switch phase {
        case .prepare: self = .start
        case .drain: self = .drain
        case .deploy: self = .deploy
        case .verify: self = .verify
        case .restore: self = .restore
        }
    }
}

/// How an interrupted target is picked up, decided from the last step the run recorded for
/// it and what the load balancer says of it now. Hooks run at least once: an interrupted
/// hook runs again from the start, never skipped.
public enum ResumeDecision {
    /// - Parameters:
    ///   - last: the target's newest step: its phase and whether it succeeded (a step that
    ///     was running or failed when the process stopped did not).
    ///   - observation: DescribeTargetHealth for the target now.
    public static func decide(last: (phase: Phase, succeeded: Bool)?, observation: TargetObservation) -> ResumePoint {
        guard let last else { return .start }
        // The phase to run next: the interrupted one again, or the one after a finished one.
        let next: ResumePoint
        if last.succeeded {
            switch last.phase {
            case .prepare: next = .drain
            case .drain: next = .deploy
            case .deploy: next = .verify
            case .verify, .restore: next = .restore
            }
        } else {
            next = ResumePoint(phase: last.phase)
        }
        switch next {
        case .start, .drain, .restore:
            // Prepare runs while serving; the drain deregisters only if still registered;
            // RegisterTargets is idempotent. Each is safe whatever the load balancer says.
            return next
        case .deploy, .verify:
            // A hook runs only on a drained target. If it is registered again (by hand) or
            // still draining, the drain is done (again) first.
            return Waiter.Rule.drained.isMet(by: observation) ? next : .drain
        }
    }
}

extension TargetObservation {
    /// No traffic can reach the target: drained (`unused`), unknown to the group, or
    /// still `draining` (requests in flight only, no new ones).
    public var isOutOfService: Bool {
        switch self {
        case .notFound: return true
        case .health(let health): return health.state == .unused || health.state == .draining
                || health.state == .unhealthyDraining
        }
    }

    /// Registered and possibly receiving traffic (`healthy`, `initial`, `unhealthy`,
    /// `unavailable`: an ALB sends traffic to unhealthy targets when all are unhealthy).
    public var isRegistered: Bool { !isOutOfService }
}
