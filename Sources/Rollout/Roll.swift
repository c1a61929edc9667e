import Logging
import Synchronization

/// What a roll needs besides the run, the plan and the ports: who it works as, and how
/// it keeps its records when the database falters.
public struct RollContext: Sendable {
    public var lease: LeaseTerms
    public var health: StoreHealth
    /// Secret values masked out of every stored line.
    public var mask: SecretMask
    /// Hears every load-balancer answer the roll gets (the status page's source).
    public var observer: (any TargetObserver)?
    /// Counts target durations, time out of service, waiter polls and hooks.
    public var metrics: RollMetrics
    /// Where the roll's writes run (the store's own threads); nil: where they are called.
    public var blocking: BlockingWork?
    /// Where a group's own health check is written down while the roll has it tightened.
    public var healthChecks: (any HealthCheckLedger)?

    public init(lease: LeaseTerms = LeaseTerms(),
                health: StoreHealth = StoreHealth(), mask: SecretMask = SecretMask(), observer: (any TargetObserver)? = nil,
                metrics: RollMetrics = RollMetrics(), blocking: BlockingWork? = nil, healthChecks: (any HealthCheckLedger)? = nil) {
        self.healthChecks = healthChecks
        self.blocking = blocking
        self.lease = lease
        self.health = health
        self.mask = mask
        self.observer = observer
        self.metrics = metrics
    }
}

/// Rolls one run through its frozen plan, one target at a time: preflight, prepare,
/// deregister + wait drained, deploy, verify, register + wait healthy. A run taken over
/// after an interruption resumes the target in hand from what the load balancer says now.
/// Any failure stops the run; the target in hand stays recorded as left out.
public struct Roll: Sendable {
    public enum Outcome: Sendable, Equatable {
        case succeeded
        case failed(RunFailure)
        /// Stopped on request once the target in hand was back; every target touched serves.
        case cancelled(String)
        /// Stopped at a safe point (shutdown): the run stays `running` and is resumed.
        case interrupted
        /// Another process holds the run now: this one records nothing more.
        case leaseLost
    }

    public let run: Run
    /// The plan as configured; `perform` may size unset waits from the group.
    public let plan: ServicePlan
    public let loadBalancer: any LoadBalancer
    public let executor: any HookExecutor
    public let journal: any RunJournal
    public let clock: any RolloutClock
    public let logger: Logger
    public let context: RollContext
    let log: RunLog
    let durable: DurableWrite
    /// Putting the previous good version back (hooks get `ROLLGATE_ROLLBACK=1`).
    var rollingBack = false
    /// The group's listing the plan was made from, for the first preflight.
    let planListing = RecentListing()

    /// The holding the roll acts under (`Run.lease`, set when the run was claimed or taken
    /// over): every write of the run and every load-balancer change is fenced by it. A run
    /// never claimed holds nothing, and its fenced writes are refused.
    var lease: RunLease { run.lease ?? RunLease(owner: LeaseOwner(host: "", pid: 0, start: 0), epoch: -1) }

    public init(run: Run, plan: ServicePlan, loadBalancer: any LoadBalancer, executor: any HookExecutor,
                journal: any RunJournal, clock: any RolloutClock, logger: Logger, context: RollContext = RollContext()) {
        self.run = run
        self.plan = plan
        self.loadBalancer = loadBalancer
        self.executor = executor
        self.journal = journal
        self.clock = clock
        self.context = context
        var logger = logger
        logger[metadataKey: "run.id"] = "\(run.id)"
        logger[metadataKey: "service"] = "\(run.service)"
        self.logger = logger
        log = RunLog(run: run.id, journal: journal, mask: context.mask, health: context.health, work: context.blocking)
        durable = DurableWrite(clock: clock, health: context.health, logger: self.logger, work: context.blocking)
    }

    /// A failure that stops the run: its code and the message the operator reads in `error`.
    struct Stop: Error {
        let failure: RunFailure
        init(_ code: RunFailure.Code, _ message: String) { failure = RunFailure(code, message) }
        init(_ failure: RunFailure) { self.failure = failure }
    }

    public func perform() async -> Outcome {
        let outcome: Outcome
        do {
            let sized = try await sizedPlan()
            let roll = Roll(run: run, plan: sized, loadBalancer: loadBalancer, executor: executor, journal: journal,
                            clock: clock, logger: logger, context: context)
            // The log says when a call waited for the account's API budget (a busy account).
            let report = CallBudgetReport { action, wait in
                if wait >= .milliseconds(500) { roll.note("\(action) delayed \(wait.humanText) by the AWS call budget (aws.describe_per_second / changes_per_second)") }
            }
            outcome = await CallBudgetReport.$current.withValue(report) {
                do {
                    try await roll.tightenHealthCheck()
                } catch is CancellationError {
                    await roll.putHealthCheckBack()
                    return .interrupted
                } catch let lost as LeaseLost {
                    roll.logger.warning("\(lost)")
                    return .leaseLost
                } catch {
                    let message = "health_check_during_roll: \(error); no target was touched"
                    roll.note("run failed: \(message)")
                    await roll.putHealthCheckBack()
                    return .failed(RunFailure(.healthCheckChange, message))
                }
                let outcome = await roll.rollAll()
                if outcome != .leaseLost { await roll.putHealthCheckBack() }
                return outcome
            }
            await roll.flushLog()
        } catch is CancellationError {
            outcome = .interrupted
        } catch {
            let message = "the target group cannot be read: \(error)"
            note("run failed: \(message)")
            outcome = .failed(RunFailure(error is LoadBalancerError ? .loadBalancer : .unexpected, message))
        }
        await flushLog()
        return outcome
    }

    /// Unset waits sized from what the target group says of itself.
    func sizedPlan() async throws -> ServicePlan {
        guard plan.sizeDrainFromGroup || plan.sizeHealthyFromGroup, let timed = loadBalancer.timed else { return plan }
        let timing = try await timed.timing()
        var sized = plan
        sized.sizeDrainFromGroup = false
        sized.sizeHealthyFromGroup = false
        if plan.sizeDrainFromGroup, let drain = timing.drainTimeout {
            sized.drainTimeout = drain
            note("drain_timeout \(drain.humanText): the group's deregistration delay \(timing.deregistrationDelay!.humanText) + \(GroupTiming.margin.humanText)")
        }
        if plan.sizeHealthyFromGroup, let healthy = timing.healthyTimeout {
            sized.healthyTimeout = healthy
            note("healthy_timeout \(healthy.humanText): \(timing.healthyThreshold!) checks \(timing.healthCheckInterval!.humanText) apart + \((timing.healthCheckTimeout ?? .zero).humanText) + \(GroupTiming.margin.humanText)")
        }
        return sized
    }

    func rollAll() async -> Outcome {
        // A rollback that was under way when rollgate stopped goes on: never forward again.
        if let previous = run.rollbackTo, run.kind == .deploy {
            note("resuming the rollback to \(previous) that was under way")
            return await rollBack(to: previous, because: RunFailure(run.errorCode ?? .unexpected,
                                                                   run.rollbackCause ?? "a rollback to \(previous) was under way when rollgate stopped"))
        }
        do {
            let planned = try await frozenPlan()
            let targets = planned.map(\.target)
            let size = plan.maxUnavailable.resolve(total: targets.count)
            let canary = run.kind == .deploy ? plan.canary : nil
            if size > 1 {
                note("up to \(size) target(s) out at once (max_unavailable \(plan.maxUnavailable)): at least \(targets.count - size) of \(targets.count) keep serving")
            }
            // Batches of `size`, in plan order; targets a crash left out come first, so a
            // resumed run never has more than `size` out either.
            let remaining = planned.enumerated().filter { $0.element.progress != .done }
            let doneBefore = planned.count - remaining.count
            var next = 0
            while next < remaining.count {
                let done = doneBefore + next
                // The canary is the plan's first `targets`: they go first, alone; once they
                // are all back the bake comes before anything else is touched.
                if let canary, done == min(canary.targets, targets.count), done < targets.count {
                    if case .cancelled(let message)? = try await bake(canary, after: Array(targets.prefix(done))) {
                        return .cancelled(message)
                    }
                }
                var limit = size
                if let canary, done < canary.targets { limit = min(size, canary.targets - done) }
                let batch = Array(remaining[next..<min(next + limit, remaining.count)])
                let (index, first) = batch[0]
                let points = try await batch.asyncMap { try await resumePoint(for: $0.element) }
                if points[0] == .start, first.progress == .pending, try await cancelRequested() {
                    let rest = planned[index...].filter { $0.progress != .done }.map(\.target.id)
                    let message = "cancelled after \(index) of \(targets.count) target(s); \(rest.joined(separator: ", ")) not touched"
                    note(message)
                    return .cancelled(message)
                }
                try await rollBatch(zip(batch, points).map { ($0.element.target, $1, $0.offset + 1) }, of: targets)
                next += batch.count
            }
            if try await cancelRequested() {
                let message = "cancelled while the last target was in hand; every target is back in service at \(run.version)"
                note(message)
                return .cancelled(message)
            }
            note(run.kind == .deploy ? "all \(targets.count) target(s) run \(run.version) and are healthy"
                                     : "\(targets.map(\.id).joined(separator: ", ")) is back in service")
            return .succeeded
        } catch let stop as Stop {
            return await failed(stop.failure)
        } catch is CancellationError where LeaseGuard.current?.mayAct == false {
            logger.error("this process may no longer act on the run (\(LeaseGuard.current?.refusal ?? "")); stopping without touching anything more")
            return .leaseLost
        } catch is CancellationError {
            note("stopped at a safe point (rollgate is shutting down); the next start resumes this run")
            return .interrupted
        } catch is LeaseLost {
            logger.error("lost the run's lease to another process; stopping without touching anything more")
            return .leaseLost
        } catch {
            return await failed(RunFailure(error is LoadBalancerError ? .loadBalancer : .unexpected, "\(error)"))
        }
    }

    /// A run that failed: left as it is (`on_failure: stop`), or with the previous good
    /// version put back on every target it touched (`on_failure: rollback`).
    private func failed(_ failure: RunFailure) async -> Outcome {
        note("run failed: \(failure.message)")
        guard plan.onFailure == .rollback, run.kind == .deploy, !rollingBack else { return .failed(failure) }
        let previous: String?
        do {
            previous = try await record("find the previous good version") {
                try await journal.previousGoodVersion(service: run.service, before: run.id, otherThan: run.version)
            }
        } catch {
            return .failed(failure.adding("; the previous good version could not be read: \(error)"))
        }
        guard let previous else {
            note("on_failure is rollback, but \(run.service) has no earlier good version; the run stops as it is")
            return .failed(failure.adding("; no earlier good version to roll back to"))
        }
        do {
            try await record("record the rollback before touching anything") {
                try await journal.recordRollback(run: run.id, to: previous, cause: failure, at: clock.now)
            }
        } catch {
            return .failed(failure.adding("; the rollback could not be recorded: \(error)"))
        }
        return await rollBack(to: previous, because: failure)
    }

    /// Puts `previous` back on every target the run touched: the ones out first (they take
    /// no capacity), then the ones it moved, in batches as the plan says, each with the same
    /// steps as a deploy and `ROLLGATE_ROLLBACK=1` for its hooks. The run ends `failed`.
    private func rollBack(to previous: String, because failure: RunFailure) async -> Outcome {
        do {
            let planned = try await record("read the run's plan") { try await journal.plan(of: run.id) }
            // Each touched target owes the rollback until it is back on `previous`: a resumed
            // rollback goes on with the ones still owed (out ones first: they take no capacity).
            let owed = planned.contains { $0.rollback != nil } ? planned.filter { $0.rollback == .pending } : planned
            let touched = owed.filter { $0.progress == .out } + owed.filter { $0.progress == .done }
            let finished = planned.filter { $0.rollback == .done }.map(\.target.id)
            if touched.isEmpty && !finished.isEmpty {
                note("rolled back: \(finished.joined(separator: ", ")) run \(previous) again")
                return .failed(failure.adding("; rolled back to \(previous)"))
            }
            guard !touched.isEmpty else { return .failed(failure.adding("; nothing was touched, so nothing was rolled back")) }
            note("rolling back to \(previous): \(touched.map(\.target.id).joined(separator: ", "))"
                 + (finished.isEmpty ? "" : " (\(finished.joined(separator: ", ")) already back on \(previous))"))
            await flushLog()   // this roll's lines first: the log stays in order
            var back = run
            back.version = previous
            // The rollback's own steps (after an interruption): its hooks count their attempts.
            back.steps = run.rollbackAfterStep.map { after in run.steps.filter { $0.id > after } } ?? []
            back.rollbackTo = nil
            var rollback = Roll(run: back, plan: plan, loadBalancer: loadBalancer, executor: executor, journal: journal,
                                clock: clock, logger: logger, context: context)
            rollback.rollingBack = true
            let all = planned.map(\.target)
            let size = plan.maxUnavailable.resolve(total: all.count)
            var next = 0
            while next < touched.count {
                let batch = touched[next..<min(next + size, touched.count)]
                try await rollback.rollBatch(batch.map { ($0.target, ResumePoint.start, next + 1) }, of: all)
                next += batch.count
            }
            await rollback.flushLog()
            note("rolled back: \((finished + touched.map(\.target.id)).joined(separator: ", ")) run \(previous) again")
            return .failed(failure.adding("; rolled back to \(previous)"))
        } catch is CancellationError where LeaseGuard.current?.mayAct == false {
            return .leaseLost
        } catch is CancellationError {
            note("stopped at a safe point during the rollback (rollgate is shutting down); the next start goes on rolling back")
            return .interrupted
        } catch is LeaseLost {
            return .leaseLost
        } catch {
            let why = (error as? Stop)?.failure.message ?? "\(error)"
            note("the rollback to \(previous) failed: \(why)")
            try? await journal.recordRollback(run: run.id, to: nil, cause: nil, at: clock.now)
            return .failed(failure.adding("; the rollback to \(previous) failed: \(why)"))
        }
    }

    /// The canary's bake: `bake` long, `check` every poll (a failure fails the run here),
    /// ended early by a promote request; a cancel ends the run with every target serving.
    private func bake(_ canary: Canary, after canaries: [Target]) async throws -> Outcome? {
        let ids = canaries.map(\.id).joined(separator: ", ")
        note("canary \(ids) runs \(run.version); baking \(canary.bake.humanText)"
             + (canary.check.map { ", running \($0) every \(plan.pollInterval.humanText)" } ?? "")
             + "; POST /api/v1/runs/\(run.id)/promote ends the bake now")
        // A resumed run bakes only what is left of the bake.
        let before = try await record("read the bake's progress") { try await journal.bakeElapsed(of: run.id) } ?? .zero
        if before > .zero { note("the bake had run \(before.humanText) before the interruption; baking the remaining \(max(.zero, canary.bake - before).humanText)") }
        let begun = clock.now
        var checks = 0
        func baked() -> Duration { before + clock.now.since(begun) }
        while baked() < canary.bake {
            try Task.checkCancellation()
            if try await record("read the promote flag", { try await journal.isPromoteRequested(run.id) }) {
                note("promoted after \(baked().humanText) of the bake: going on with the rest")
                return nil
            }
            if try await cancelRequested() {
                let message = "cancelled during the canary's bake; \(ids) run \(run.version), the rest were not touched"
                note(message)
                return .cancelled(message)
            }
            if let check = canary.check {
                checks += 1
                var environment = self.environment(canaries[0], phase: .verify, host: nil, attempt: checks)
                environment["ROLLGATE_CHECK"] = "canary"
                environment["ROLLGATE_CANARY_TARGETS"] = canaries.map(\.id).joined(separator: " ")
                let outcome = try await self.check(check, phase: .verify, environment: environment, loggedAs: nil)
                if !outcome.succeeded {
                    if Task.isCancelled { throw CancellationError() }
                    throw Stop(.canaryCheckFailed, "canary check failed after \(baked().humanText) of the bake: \(check): \(outcome)")
                }
            }
            try await clock.sleep(for: min(plan.pollInterval, canary.bake - baked()))
            let progress = baked()
            try await record("record the bake's progress") { try await journal.recordBake(run: run.id, elapsed: progress) }
        }
        note("bake over: the canary behaved for \(canary.bake.humanText); going on with the rest")
        return nil
    }

    /// Rolls a batch: its targets side by side (each with its own steps and log lines), the
    /// batch settled as a whole: when one fails, the others finish (back in service or left
    /// out with their reason) and then the first failure stops the run.
    func rollBatch(_ batch: [(target: Target, from: ResumePoint, number: Int)], of targets: [Target]) async throws {
        if batch.count == 1 {
            try await roll(batch[0].target, from: batch[0].from, number: batch[0].number, of: targets, batch: [batch[0].target])
            return
        }
        let members = Set(batch.map(\.target))
        note("batch: \(batch.map(\.target.id).joined(separator: ", "))")
        let failures = await withTaskGroup(of: Error?.self) { group in
            for entry in batch {
                group.addTask {
                    do {
                        try await roll(entry.target, from: entry.from, number: entry.number, of: targets, batch: members)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            var failures: [Error] = []
            for await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
        // A lost lease or a shutdown comes before a target's own failure: the run is resumed.
        if let lost = failures.first(where: { $0 is LeaseLost }) { throw lost }
        if let stopped = failures.first(where: { $0 is CancellationError }) { throw stopped }
        if let stop = failures.compactMap({ $0 as? Stop }).first {
            // Several targets failed: the first's code, every target's words.
            throw failures.count > 1 ? Stop(stop.failure.code, failures.map { ($0 as? Stop)?.failure.message ?? "\($0)" }.joined(separator: "; ")) : stop
        }
        if let other = failures.first { throw other }
    }

    /// The plan in force: the one frozen when the run first started, else a new one: the
    /// service's left-out targets first (already out, so rolling them takes no capacity),
    /// then every registered target, each in a stable order.
    private func frozenPlan() async throws -> [PlannedTarget] {
        let existing = try await record("read the run's plan") { try await journal.plan(of: run.id) }
        if !existing.isEmpty {
            let done = existing.filter { $0.progress == .done }.count
            note("resuming: plan of \(existing.count) target(s) frozen at the start (\(existing.map(\.target.id).joined(separator: ", "))), \(done) done")
            return existing
        }
        var targets: [Target]
        switch run.kind {
        case .restore(let target):
            targets = [target]
            note("restoring \(target) to service in \(run.service): RegisterTargets and wait until healthy, no hooks")
        case .deploy:
            let leftOut = try await record("read the left-out targets") { try await journal.leftOut(service: run.service) }
            let listing = try await loadBalancer.targets()
            planListing.keep(listing, at: clock.uptime)
            let registered = listing.map(\.target).sorted()
            // A run an older rollgate started has steps but no plan: its targets come first.
            var touched: [Target] = []
            for step in run.steps {
                let target = Target(id: step.targetID, port: step.targetPort)
                if !touched.contains(target) { touched.append(target) }
            }
            targets = touched
            targets += leftOut.map(\.target).sorted().filter { !targets.contains($0) }
            targets += registered.filter { !targets.contains($0) }
            guard !targets.isEmpty else { throw Stop(.noTargets, "the target group has no registered targets") }
            var line = "rolling \(run.service) to \(run.version) over \(targets.count) target(s): \(targets.map(\.id).joined(separator: ", "))"
            if !leftOut.isEmpty {
                line += "; left out before and included first: " + leftOut.map { "\($0.target.id) (run \($0.runID), \($0.phase.rawValue): \($0.reason))" }.joined(separator: "; ")
            }
            note(line)
        }
        let chosen = targets
        return try await record("freeze the run's plan") { try await journal.freezePlan(run: run.id, targets: chosen) }
    }

    /// Where the target picks up: from the start for one this run has not touched, else
    /// from what the run recorded last and what the load balancer says now.
    private func resumePoint(for entry: PlannedTarget) async throws -> ResumePoint {
        if case .restore = run.kind { return .restore }
        let steps = run.steps.filter { $0.targetID == entry.target.id && $0.targetPort == entry.target.port }
        guard let last = steps.last else {
            return entry.progress == .out ? .drain : .start
        }
        let observation = try await loadBalancer.health(of: entry.target)
        let point = ResumeDecision.decide(last: (last.phase, last.status == .succeeded), observation: observation)
        let what = last.status == .succeeded ? "after \(last.phase.rawValue)" : "during \(last.phase.rawValue)"
        note("resumed after an interruption \(what) of \(entry.target.id): the load balancer says \(observation); continuing \(point)",
             target: entry.target)
        return point
    }

    private func cancelRequested() async throws -> Bool {
        try await record("read the cancel flag") { try await journal.isCancelRequested(run.id) }
    }
}

extension Array {
    /// `map` with an async transform, in order, one at a time.
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        results.reserveCapacity(count)
        for element in self { results.append(try await transform(element)) }
        return results
    }
}

/// One answer of the group's listing, handed on once to the next reader that would ask the
/// same question within moments of it (the plan's listing to the first preflight).
final class RecentListing: Sendable {
    typealias Listing = [(target: Target, health: TargetHealth)]
    private let slot = Mutex<(at: Duration, listing: Listing)?>(nil)

    func keep(_ listing: Listing, at uptime: Duration) {
        slot.withLock { $0 = (uptime, listing) }
    }

    /// The kept listing if it is no older than `age`; it is handed out once.
    func take(freshWithin age: Duration, now: Duration) -> Listing? {
        slot.withLock { kept in
            defer { kept = nil }
            guard let kept, now - kept.at <= age else { return nil }
            return kept.listing
        }
    }
}
