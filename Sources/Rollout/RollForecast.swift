/// What a service's past runs took in one phase: the median and the 90th percentile of its
/// steps that succeeded (nearest rank), and how many there were.
public struct PhaseTimes: Sendable, Equatable {
    public var p50: Duration
    public var p90: Duration
    public var samples: Int

    public init(p50: Duration, p90: Duration, samples: Int) {
        self.p50 = p50
        self.p90 = p90
        self.samples = samples
    }

    /// Nil without samples.
    public init?(_ durations: [Duration]) {
        guard !durations.isEmpty else { return nil }
        let sorted = durations.sorted()
        func rank(_ share: Double) -> Duration {
            sorted[max(0, min(sorted.count - 1, Int((share * Double(sorted.count)).rounded(.up)) - 1))]
        }
        self.init(p50: rank(0.5), p90: rank(0.9), samples: sorted.count)
    }
}

/// How much of a drain waited on an app that was already quiet, over the drains fast drain's
/// check measured (`fast_drain`, or `fast_drain.measure_only`): the median share and how
/// many drains it is taken from.
public struct IdleShare: Sendable, Equatable {
    public var median: Double
    public var drains: Int

    /// Nil without samples.
    public init?(_ shares: [Double]) {
        guard !shares.isEmpty else { return nil }
        let sorted = shares.sorted()
        median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        drains = sorted.count
    }

    public var percent: Int { Int((median * 100).rounded()) }
}

/// How long a roll of a service will take, what bounds it, and what each change would save:
/// arithmetic on the target group's own settings, the service's plan and its history. Used
/// by `rollgate plan`, `GET /api/v1/services/{name}/plan` and `check-config --remote`.
///
/// A target is out of service for its drain, its hooks (deploy and verify) and its health
/// passes; prepare runs while it still serves. Where the service has rolled at least
/// `PhaseTimes.enough` times, its measured medians are used; before that the group's settings
/// (deregistration delay; interval x healthy threshold) and nothing for hooks.
public struct RollForecast: Sendable, Equatable {
    /// One part of a target's time out of service, and where its figure comes from.
    public struct Part: Sendable, Equatable {
        public enum Name: String, Sendable { case drain, hooks, health }
        public var name: Name
        public var expected: Duration
        public var from: String
        /// False when nothing says how long it takes (counted as zero).
        public var known = true
    }

    /// A change and what it saves, per target and on the whole roll.
    public struct Advice: Sendable, Equatable {
        public enum Change: String, Sendable { case fastDrain = "fast_drain", healthCheck = "health_check_during_roll", maxUnavailable = "max_unavailable" }
        public var change: Change
        public var text: String
        public var savesPerTarget: Duration
        public var savesOnRoll: Duration
    }

    /// Measured medians count once a phase has this many samples.
    public static let enough = 3
    /// What the advice proposes: a quiet period for fast drain, a health check for the roll.
    public static let suggestedQuiet: Duration = .seconds(10)
    public static let suggestedInterval: Duration = .seconds(5)
    public static let suggestedThreshold = 2

    public var targets: Int
    public var batchSize: Int
    public var batches: Int
    public var parts: [Part]
    /// Prepare hooks, before each target goes out.
    public var prepare: Duration
    public var bake: Duration
    /// The group's slow start: a healthy target's traffic ramps up for this long after it is
    /// back (serving, so not counted as out of service).
    public var slowStart: Duration?
    /// The measured idle share of the service's drains, once `enough` were measured.
    public var idle: IdleShare?
    public var advice: [Advice]

    /// A target's expected time out of service.
    public var perTarget: Duration { parts.reduce(.zero) { $0 + $1.expected } }
    /// The longest part.
    public var boundBy: Part.Name { parts.max { $0.expected < $1.expected }?.name ?? .drain }
    /// The whole roll: each batch takes a target's prepare and time out (its targets side
    /// by side), then the canary's bake.
    public var total: Duration { (prepare + perTarget) * batches + bake }

    public init(plan: ServicePlan, timing: GroupTiming, targets: Int, history: [Phase: PhaseTimes], idle: IdleShare? = nil) {
        self.targets = targets
        self.idle = idle.flatMap { $0.drains >= RollForecast.enough ? $0 : nil }
        let measured = { (phase: Phase) -> PhaseTimes? in history[phase].flatMap { $0.samples >= RollForecast.enough ? $0 : nil } }
        batchSize = plan.maxUnavailable.resolve(total: targets)
        batches = RollForecast.batches(targets: targets, size: batchSize, canary: plan.canary?.targets)
        bake = targets > 0 ? plan.canary?.bake ?? .zero : .zero
        prepare = measured(.prepare)?.p50 ?? .zero
        slowStart = timing.slowStart.flatMap { $0 > .zero ? $0 : nil }

        // The drain as configured, the health pass as the group checks.
        let modelDrain: (Duration, String)? = {
            if let fast = plan.fastDrain, !fast.measureOnly {
                let quiet = fast.quiet + plan.pollInterval
                if let delay = timing.deregistrationDelay, delay < quiet { return (delay, "the deregistration delay (\(delay.spoken))") }
                return (quiet, "fast drain's quiet \(fast.quiet.spoken) and a poll")
            }
            return timing.deregistrationDelay.map { ($0, "the deregistration delay (\($0.spoken))") }
        }()
        let modelHealth = plan.healthCheckDuringRoll.map { tight in
            (tight.interval * tight.healthyThreshold, "health_check_during_roll: \(tight.healthyThreshold) checks \(tight.interval.spoken) apart")
        } ?? timing.healthPass.map { pass in
            let threshold = timing.healthyThreshold ?? 0
            return (pass, threshold == 1 ? "1 check after \(timing.healthCheckInterval?.spoken ?? "?")"
                                         : "\(threshold) checks \(timing.healthCheckInterval?.spoken ?? "?") apart")
        }
        var parts: [Part] = []
        let idleNote = self.idle.map { ", idle \($0.percent)% of it (median of \($0.drains) measured)" } ?? ""
        if let drain = measured(.drain) {
            parts.append(Part(name: .drain, expected: drain.p50, from: "median of \(drain.samples) drains (p90 \(drain.p90.spoken))\(idleNote)"))
        } else {
            parts.append(Part(name: .drain, expected: modelDrain?.0 ?? .zero, from: modelDrain?.1 ?? "unknown: no deregistration delay and no history",
                              known: modelDrain != nil))
        }
        let deploy = measured(.deploy), verify = measured(.verify)
        if deploy != nil || verify != nil {
            let samples = max(deploy?.samples ?? 0, verify?.samples ?? 0)
            parts.append(Part(name: .hooks, expected: (deploy?.p50 ?? .zero) + (verify?.p50 ?? .zero),
                              from: "median deploy and verify hooks of \(samples) targets"))
        } else {
            parts.append(Part(name: .hooks, expected: .zero, from: "unknown until the service has rolled \(RollForecast.enough) targets",
                              known: false))
        }
        if let health = measured(.restore) {
            parts.append(Part(name: .health, expected: health.p50, from: "median of \(health.samples) health passes (p90 \(health.p90.spoken))"))
        } else {
            parts.append(Part(name: .health, expected: modelHealth?.0 ?? .zero, from: modelHealth?.1 ?? "unknown: no health check settings and no history",
                              known: modelHealth != nil))
        }
        self.parts = parts
        advice = []

        // What each change would save, one at a time, against this forecast.
        let drain = parts[0].expected, health = parts[2].expected
        // Fast drain ends a drain `quiet` (and a poll) after the app went quiet: it saves the
        // idle share of the drain less that. Unmeasured, the app is assumed idle from the start.
        if plan.fastDrain == nil || plan.fastDrain?.measureOnly == true {
            let quiet = plan.fastDrain?.quiet ?? RollForecast.suggestedQuiet
            let idleTime = self.idle.map { drain * $0.median } ?? drain
            let saves = idleTime - quiet - plan.pollInterval
            if saves > .zero {
                let basis = self.idle.map { " (drains idle \($0.percent)% of their time, \($0.drains) measured)" }
                    ?? " (if the app is idle during drains; measure with fast_drain.measure_only)"
                add(.fastDrain, "fast drain (quiet \(quiet.spoken))", perTarget: saves, basis: basis)
            }
        }
        if plan.healthCheckDuringRoll == nil, let now = timing.healthPass {
            let tight = RollForecast.suggestedInterval * RollForecast.suggestedThreshold
            if now > tight {
                let saves = min(health, now - tight)
                add(.healthCheck, "health check interval \(RollForecast.suggestedInterval.spoken), healthy threshold \(RollForecast.suggestedThreshold) during the roll",
                    perTarget: saves)
            }
        }
        if batchSize + 1 < targets && plan.canary == nil {
            let wider = RollForecast.batches(targets: targets, size: batchSize + 1, canary: nil)
            let saved = (prepare + perTarget) * (batches - wider)
            if saved > .zero {
                let share = Int((Double(batches - wider) / Double(batches) * 100).rounded())
                advice.append(Advice(change: .maxUnavailable, text: "max_unavailable \(batchSize + 1): −\(share)% (\(saved.spoken) on the roll)",
                                     savesPerTarget: .zero, savesOnRoll: saved))
            }
        }
    }

    private mutating func add(_ change: Advice.Change, _ what: String, perTarget saves: Duration, basis: String = "") {
        advice.append(Advice(change: change, text: "\(what): −\(saves.spoken) per target\(basis)", savesPerTarget: saves, savesOnRoll: saves * batches))
    }

    /// Batches of `size` after a canary batch of `canary` targets, if any.
    static func batches(targets: Int, size: Int, canary: Int?) -> Int {
        guard targets > 0 else { return 0 }
        let size = max(1, size)
        guard let canary, canary > 0 else { return (targets + size - 1) / size }
        let rest = max(0, targets - canary)
        return 1 + (rest + size - 1) / size
    }
}

extension Duration {
    /// `4 min 20 s`, `45 s`, `1 h 5 min`, `800 ms`: how the plan and the page say a duration.
    public var spoken: String {
        let ms = Int64((seconds * 1000).rounded())
        if ms < 1000 { return "\(ms) ms" }
        let s = (ms + 500) / 1000
        if s < 60 { return "\(s) s" }
        if s < 3600 { return s % 60 == 0 ? "\(s / 60) min" : "\(s / 60) min \(s % 60) s" }
        let minutes = (s + 30) / 60
        return minutes % 60 == 0 ? "\(minutes / 60) h" : "\(minutes / 60) h \(minutes % 60) min"
    }
}

extension RollForecast {
    /// The forecast as lines a person reads (`rollgate plan`, `check-config --remote`).
    public func summary(service: String) -> [String] {
        var lines: [String] = []
        let plural = targets == 1 ? "target" : "targets"
        lines.append("\(service): \(targets) \(plural), \(batchSize) at a time (\(batches) \(batches == 1 ? "batch" : "batches"))")
        let unknown = parts.filter { !$0.known }.map(\.name.rawValue)
        lines.append("  out of service per target: about \(perTarget.spoken), bound by the \(boundBy.rawValue)"
                     + (unknown.isEmpty ? "" : " (\(unknown.joined(separator: " and ")) not counted: unknown)"))
        let figures = parts.map { $0.known ? $0.expected.spoken : "?" }
        let width = figures.map(\.count).max() ?? 0
        for (part, figure) in zip(parts, figures) {
            let label = part.name.rawValue + String(repeating: " ", count: max(0, 6 - part.name.rawValue.count))
            lines.append("    \(label) \(figure)\(String(repeating: " ", count: width - figure.count))  \(part.from)")
        }
        var whole = "  whole roll: about \(total.spoken)"
        if prepare > .zero { whole += " (prepare \(prepare.spoken) per batch)" }
        if bake > .zero { whole += ", with the canary's bake of \(bake.spoken)" }
        lines.append(whole)
        if let slowStart {
            lines.append("  slow start \(slowStart.spoken): a target's traffic ramps up for \(slowStart.spoken) once healthy (serving, not counted)")
        }
        if advice.isEmpty {
            lines.append("  nothing in rollgate's reach would make it faster")
        } else {
            lines.append("  would save:")
            for item in advice { lines.append("    \(item.text)") }
        }
        return lines
    }
}
