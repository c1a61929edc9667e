#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where a running run is, in one line an operator reads at a glance:
/// `1 of 3 targets done; web-2 draining for 12 s of ~600 s`.
public struct RunProgress: Sendable, Equatable {
    /// Targets whose last step is a succeeded restore (back in service at the run's end).
    public var done: Int
    /// How many targets the run rolls: the service's targets when known, else those it touched.
    public var total: Int
    /// The targets in hand now (a batch holds several), each with its phase and since when.
    public var inHand: [(target: String, phase: Phase, since: Date)]

    public static func == (a: RunProgress, b: RunProgress) -> Bool {
        a.done == b.done && a.total == b.total && a.inHand.map(\.target) == b.inHand.map(\.target)
            && a.inHand.map(\.phase) == b.inHand.map(\.phase) && a.inHand.map(\.since) == b.inHand.map(\.since)
    }

    public init(_ run: Run, targets: Int? = nil) {
        let latest = run.latestStepPerTarget
        done = latest.filter { $0.phase == .restore && $0.status == .succeeded }.count
        total = max(targets ?? 0, latest.count)
        inHand = latest.filter { $0.status == .running }.map { ($0.targetID, $0.phase, $0.startedAt) }
    }

    /// What the phase is doing, as a verb.
    public static func doing(_ phase: Phase) -> String {
        switch phase {
        case .prepare: return "preparing"
        case .drain: return "draining"
        case .deploy: return "deploying"
        case .verify: return "verifying"
        case .restore: return "waiting to be healthy"
        }
    }

    /// The phase's limit in the plan, for "12 s of ~600 s".
    public static func limit(of phase: Phase, in plan: ServicePlan?) -> Duration? {
        guard let plan else { return nil }
        switch phase {
        case .drain: return plan.drainTimeout
        case .restore: return plan.healthyTimeout
        case .prepare, .deploy, .verify: return plan.hookTimeout
        }
    }

    /// `1 of 3 targets done; web-2 draining for 12 s of ~600 s`.
    public func text(now: Date, plan: ServicePlan? = nil) -> String {
        var text = "\(done) of \(total) target\(total == 1 ? "" : "s") done"
        for hand in inHand {
            text += "; \(hand.target) \(RunProgress.doing(hand.phase)) for \(max(.zero, now.since(hand.since)).readable)"
            if let limit = RunProgress.limit(of: hand.phase, in: plan) { text += " of ~\(limit.readable)" }
        }
        return text
    }
}

/// A run's time out of service, per target and as the run lived it: `shortFor` is how long at
/// least one target was out during the run (the union of the spans, up to the run's end),
/// which never exceeds the run's own duration even when a batch takes several out at once or
/// a target it left out is out still; `targetTime` is the spans' sum.
public struct OutOfService: Sendable, Equatable {
    public var spans: [(target: Target, duration: Duration, stillOut: Bool)]
    public var shortFor: Duration
    public var targetTime: Duration

    public static func == (a: OutOfService, b: OutOfService) -> Bool {
        a.shortFor == b.shortFor && a.targetTime == b.targetTime && a.spans.map(\.target) == b.spans.map(\.target)
            && a.spans.map(\.duration) == b.spans.map(\.duration)
    }

    /// Nil before the run took any target out.
    public init?(_ run: Run, now: Date) {
        let outages = run.outages
        guard !outages.isEmpty else { return nil }
        // Never below zero: a start stamped by a replica whose clock runs ahead of this one's.
        let intervals = outages.map { outage in (outage.from, max(outage.from, outage.until ?? now)) }
        spans = zip(outages, intervals).map { ($0.target, $1.1.since($1.0), $0.until == nil) }
        targetTime = spans.reduce(.zero) { $0 + $1.duration }
        var union: Duration = .zero
        var current: (Date, Date)?
        let end = run.finishedAt ?? now
        for (from, open) in intervals.sorted(by: { $0.0 < $1.0 }) {
            let until = max(from, min(open, end))
            if let open = current, from <= open.1 {
                current = (open.0, max(open.1, until))
            } else {
                if let open = current { union += open.1.since(open.0) }
                current = (from, until)
            }
        }
        if let open = current { union += open.1.since(open.0) }
        shortFor = union
    }
}
