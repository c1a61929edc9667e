#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the roll writes as it goes. Each state change is committed before the action it
/// announces (write ahead) and its outcome after.
/// One log line on its way to the journal.
public struct LogEntry: Sendable, Equatable {
    public var stream: LogLine.Stream
    public var target: String?
    public var phase: Phase?
    public var text: String
    public var at: Date

    public init(stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at: Date) {
        self.stream = stream
        self.target = target
        self.phase = phase
        self.text = text
        self.at = at
    }
}

/// What a run writes from threads that may block, at once: its log lines in batches (`RunLog`,
/// from the hooks' pipe readers and the store's threads, in order under its lock) and a
/// hook's process group (right after the spawn, on the hook runner's thread).
public protocol RunRecords: Sendable {
    func recordHookProcess(_ process: HookProcess, step: StepID) throws
    /// Many lines in order, all or none (one transaction where the journal has them).
    func log(run: RunID, _ lines: [LogEntry]) throws
}

/// The roll's journal as a store that blocks offers it (SQLite, libpq): each call may wait on
/// a lock or a round trip, so the roll never calls it itself: `JournalOnThreads` makes each
/// call on the store's own threads and the roll awaits it (`RunJournal`).
public protocol BlockingRunJournal: RunRecords {
    func beginStep(run: RunID, target: Target, phase: Phase, at: Date) throws -> StepID
    func endStep(_ step: StepID, _ event: StepEvent, error: String?, at: Date) throws
    /// How long the target of a drain step had been quiet when the drain ended (fast drain's
    /// check passing until then): the idle share `rollgate plan` reports.
    func noteQuiet(_ step: StepID, quiet: Duration) throws
    func log(run: RunID, stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at: Date) throws
    func isCancelRequested(_ run: RunID) throws -> Bool
    /// The run's frozen plan, in order; empty until frozen.
    func plan(of run: RunID) throws -> [PlannedTarget]
    /// Freezes the plan unless the run has one; returns the plan in force.
    func freezePlan(run: RunID, targets: [Target]) throws -> [PlannedTarget]
    /// Written before DeregisterTargets (or before taking on a target found out of the load
    /// balancer): the target's progress is `out` and its service records it as left out.
    /// Fenced: throws `LeaseLost` unless the run is still held under `lease`.
    func markOut(run: RunID, service: String, target: Target, phase: Phase, reason: String,
                 lease: RunLease, at: Date) throws
    /// The target is healthy again: progress `done`, no longer left out, interruptions reset.
    /// Fenced like `markOut`.
    func markDone(run: RunID, service: String, target: Target, lease: RunLease, at: Date) throws
    /// Why a left-out target is still out (a failed hook or health gate), and where.
    func noteLeftOut(service: String, target: Target, run: RunID, phase: Phase, reason: String, at: Date) throws
    /// Targets of a service that rollgate took out and has not put back, oldest first.
    func leftOut(service: String) throws -> [LeftOutTarget]
    /// Extends the run's lease to `duration` from now on the store's clock; throws
    /// `LeaseLost` unless it is still held under `lease`.
    func renewLease(run: RunID, lease: RunLease, for duration: Duration) throws
    /// Whether someone asked to end the run's canary bake now.
    func isPromoteRequested(_ run: RunID) throws -> Bool
    /// The newest version a deploy of `service` older than `run` succeeded with, other than
    /// `run`'s own version: what a rollback puts back.
    func previousGoodVersion(service: String, before run: RunID, otherThan version: String) throws -> String?
    /// Written before an automatic rollback touches anything (a resumed run goes on rolling
    /// back, never forward again), with the failure that started it; every target the run
    /// touched is then owed the rollback (`PlannedTarget.rollback`). `to` nil: the rollback
    /// could not finish.
    func recordRollback(run: RunID, to version: String?, cause: RunFailure?, at: Date) throws
    /// How far the canary's bake got, kept so a resumed run bakes only what is left.
    func recordBake(run: RunID, elapsed: Duration) throws
    func bakeElapsed(of run: RunID) throws -> Duration?
}

/// What the roll writes as it goes, awaited: each call is made on the store's own threads,
/// never on Swift's cooperative pool. Each state change is committed before the action it
/// announces (write ahead) and its outcome after.
public protocol RunJournal: RunRecords {
    func beginStep(run: RunID, target: Target, phase: Phase, at: Date) async throws -> StepID
    func endStep(_ step: StepID, _ event: StepEvent, error: String?, at: Date) async throws
    /// How long the target of a drain step had been quiet when the drain ended (fast drain's
    /// check passing until then): the idle share `rollgate plan` reports.
    func noteQuiet(_ step: StepID, quiet: Duration) async throws
    func log(run: RunID, stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at: Date) async throws
    func isCancelRequested(_ run: RunID) async throws -> Bool
    /// The run's frozen plan, in order; empty until frozen.
    func plan(of run: RunID) async throws -> [PlannedTarget]
    /// Freezes the plan unless the run has one; returns the plan in force.
    func freezePlan(run: RunID, targets: [Target]) async throws -> [PlannedTarget]
    /// Written before DeregisterTargets (or before taking on a target found out of the load
    /// balancer): the target's progress is `out` and its service records it as left out.
    /// Fenced: throws `LeaseLost` unless the run is still held under `lease`.
    func markOut(run: RunID, service: String, target: Target, phase: Phase, reason: String,
                 lease: RunLease, at: Date) async throws
    /// The target is healthy again: progress `done`, no longer left out, interruptions reset.
    /// Fenced like `markOut`.
    func markDone(run: RunID, service: String, target: Target, lease: RunLease, at: Date) async throws
    /// Why a left-out target is still out (a failed hook or health gate), and where.
    func noteLeftOut(service: String, target: Target, run: RunID, phase: Phase, reason: String, at: Date) async throws
    /// Targets of a service that rollgate took out and has not put back, oldest first.
    func leftOut(service: String) async throws -> [LeftOutTarget]
    /// Extends the run's lease to `duration` from now on the store's clock; throws
    /// `LeaseLost` unless it is still held under `lease`.
    func renewLease(run: RunID, lease: RunLease, for duration: Duration) async throws
    /// Whether someone asked to end the run's canary bake now.
    func isPromoteRequested(_ run: RunID) async throws -> Bool
    /// The newest version a deploy of `service` older than `run` succeeded with, other than
    /// `run`'s own version: what a rollback puts back.
    func previousGoodVersion(service: String, before run: RunID, otherThan version: String) async throws -> String?
    /// Written before an automatic rollback touches anything (a resumed run goes on rolling
    /// back, never forward again), with the failure that started it; every target the run
    /// touched is then owed the rollback (`PlannedTarget.rollback`). `to` nil: the rollback
    /// could not finish.
    func recordRollback(run: RunID, to version: String?, cause: RunFailure?, at: Date) async throws
    /// How far the canary's bake got, kept so a resumed run bakes only what is left.
    func recordBake(run: RunID, elapsed: Duration) async throws
    func bakeElapsed(of run: RunID) async throws -> Duration?
}

/// The durable queue as a store that blocks offers it (`QueueOnThreads` makes it async).
/// The durable queue the dispatcher takes runs from. Lease times are the store's: callers
/// say how long, the store computes and compares expiries on its own clock (SQLite: this
/// host's; an engine with a server clock uses that), so no two processes compare times taken
/// from two clocks.
public protocol BlockingRunQueue: BlockingRunJournal {
    /// Atomically moves the oldest queued run of a service with nothing running and no lock
    /// in force to `running` (started `at`), leased to `owner` for `lease` under a new epoch
    /// (`Run.lease`).
    func claimNext(owner: LeaseOwner, lease: Duration, at: Date) throws -> Run?
    /// Running runs whose lease expired (on the store's clock) or whose owner `isGone`, other
    /// than `excluding`: each is taken over for `lease` by a conditional update (so two takers
    /// never both win), its interruptions counted and its epoch incremented, and returned with
    /// its steps and lease.
    func takeOver(owner: LeaseOwner, lease: Duration, excluding: Set<RunID>,
                  isGone: (LeaseOwner) -> Bool) throws -> [Run]
    /// Ends a run. With a lease, only if the run is still held under it (`LeaseLost` otherwise).
    /// A failed run's `code` says where it failed (`error` in the operator's words).
    func finish(_ run: RunID, _ event: RunEvent, error: String?, code: RunFailure.Code?, lease: RunLease?, at: Date) throws
    /// Gives the run up for the next start to resume at once (a clean shutdown).
    func releaseLease(run: RunID, lease: RunLease) throws
    func recordInterruption(run: RunID, note: String, at: Date) throws
    /// The interruptions recorded for a run, oldest first.
    func interruptions(of run: RunID) throws -> [String]
    /// Runs with a status, oldest first, with their steps.
    func runs(withStatus status: RunStatus) throws -> [Run]
}

/// The durable queue the dispatcher takes runs from, awaited (see `BlockingRunQueue`).
public protocol RunQueue: RunJournal {
    /// Atomically moves the oldest queued run of a service with nothing running and no lock
    /// in force to `running` (started `at`), leased to `owner` for `lease` under a new epoch
    /// (`Run.lease`).
    func claimNext(owner: LeaseOwner, lease: Duration, at: Date) async throws -> Run?
    /// Running runs whose lease expired (on the store's clock) or whose owner `isGone`, other
    /// than `excluding`: each is taken over for `lease` by a conditional update (so two takers
    /// never both win), its interruptions counted and its epoch incremented, and returned with
    /// its steps and lease.
    func takeOver(owner: LeaseOwner, lease: Duration, excluding: Set<RunID>,
                  isGone: @escaping @Sendable (LeaseOwner) -> Bool) async throws -> [Run]
    /// Ends a run. With a lease, only if the run is still held under it (`LeaseLost` otherwise).
    /// A failed run's `code` says where it failed (`error` in the operator's words).
    func finish(_ run: RunID, _ event: RunEvent, error: String?, code: RunFailure.Code?, lease: RunLease?, at: Date) async throws
    /// Gives the run up for the next start to resume at once (a clean shutdown).
    func releaseLease(run: RunID, lease: RunLease) async throws
    func recordInterruption(run: RunID, note: String, at: Date) async throws
    /// The interruptions recorded for a run, oldest first.
    func interruptions(of run: RunID) async throws -> [String]
    /// Runs with a status, oldest first, with their steps.
    func runs(withStatus status: RunStatus) async throws -> [Run]
}

/// A blocking journal made async: each call on `work`'s threads (where it is called when nil,
/// as in tests on a store no one else locks). The run's records stay synchronous: their
/// callers are on threads that may block.
public protocol JournalOnThreadsBase: RunJournal {
    var blockingJournal: any BlockingRunJournal { get }
    var work: BlockingWork? { get }
}

extension JournalOnThreadsBase {
    public func recordHookProcess(_ process: HookProcess, step: StepID) throws { try blockingJournal.recordHookProcess(process, step: step) }
    public func log(run: RunID, _ lines: [LogEntry]) throws { try blockingJournal.log(run: run, lines) }
    public func beginStep(run: RunID, target: Target, phase: Phase, at: Date) async throws -> StepID {
        let base = self.blockingJournal
        return try await work.run { try base.beginStep(run: run, target: target, phase: phase, at: at) }
    }
    public func endStep(_ step: StepID, _ event: StepEvent, error: String?, at: Date) async throws {
        let base = self.blockingJournal
        return try await work.run { try base.endStep(step, event, error: error, at: at) }
    }
    public func noteQuiet(_ step: StepID, quiet: Duration) async throws {
        let base = self.blockingJournal
        return try await work.run { try base.noteQuiet(step, quiet: quiet) }
    }
    public func log(run: RunID, stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at: Date) async throws {
        let base = self.blockingJournal
        return try await work.run { try base.log(run: run, stream: stream, target: target, phase: phase, text: text, at: at) }
    }
    public func isCancelRequested(_ run: RunID) async throws -> Bool {
        let base = self.blockingJournal
        return try await work.run { try base.isCancelRequested(run) }
    }
    public func plan(of run: RunID) async throws -> [PlannedTarget] {
        let base = self.blockingJournal
        return try await work.run { try base.plan(of: run) }
    }
    public func freezePlan(run: RunID, targets: [Target]) async throws -> [PlannedTarget] {
        let base = self.blockingJournal
        return try await work.run { try base.freezePlan(run: run, targets: targets) }
    }
    public func markOut(run: RunID, service: String, target: Target, phase: Phase, reason: String,
                 lease: RunLease, at: Date) async throws {
        let base = self.blockingJournal
        return try await work.run { try base.markOut(run: run, service: service, target: target, phase: phase, reason: reason, lease: lease, at: at) }
    }
    public func markDone(run: RunID, service: String, target: Target, lease: RunLease, at: Date) async throws {
        let base = self.blockingJournal
        return try await work.run { try base.markDone(run: run, service: service, target: target, lease: lease, at: at) }
    }
    public func noteLeftOut(service: String, target: Target, run: RunID, phase: Phase, reason: String, at: Date) async throws {
        let base = self.blockingJournal
        return try await work.run { try base.noteLeftOut(service: service, target: target, run: run, phase: phase, reason: reason, at: at) }
    }
    public func leftOut(service: String) async throws -> [LeftOutTarget] {
        let base = self.blockingJournal
        return try await work.run { try base.leftOut(service: service) }
    }
    public func renewLease(run: RunID, lease: RunLease, for duration: Duration) async throws {
        let base = self.blockingJournal
        return try await work.run { try base.renewLease(run: run, lease: lease, for: duration) }
    }
    public func isPromoteRequested(_ run: RunID) async throws -> Bool {
        let base = self.blockingJournal
        return try await work.run { try base.isPromoteRequested(run) }
    }
    public func previousGoodVersion(service: String, before run: RunID, otherThan version: String) async throws -> String? {
        let base = self.blockingJournal
        return try await work.run { try base.previousGoodVersion(service: service, before: run, otherThan: version) }
    }
    public func recordRollback(run: RunID, to version: String?, cause: RunFailure?, at: Date) async throws {
        let base = self.blockingJournal
        return try await work.run { try base.recordRollback(run: run, to: version, cause: cause, at: at) }
    }
    public func recordBake(run: RunID, elapsed: Duration) async throws {
        let base = self.blockingJournal
        return try await work.run { try base.recordBake(run: run, elapsed: elapsed) }
    }
    public func bakeElapsed(of run: RunID) async throws -> Duration? {
        let base = self.blockingJournal
        return try await work.run { try base.bakeElapsed(of: run) }
    }
}

/// The roll's journal on the store's threads.
public struct JournalOnThreads: JournalOnThreadsBase {
    public let blockingJournal: any BlockingRunJournal
    public let work: BlockingWork?

    public init(_ journal: any BlockingRunJournal, work: BlockingWork?) {
        blockingJournal = journal
        self.work = work
    }
}

/// The dispatcher's queue on the store's threads.
public struct QueueOnThreads: JournalOnThreadsBase, RunQueue {
    public let queue: any BlockingRunQueue
    public let work: BlockingWork?
    public var blockingJournal: any BlockingRunJournal { queue }

    public init(_ queue: any BlockingRunQueue, work: BlockingWork?) {
        self.queue = queue
        self.work = work
    }

    public func claimNext(owner: LeaseOwner, lease: Duration, at: Date) async throws -> Run? {
        let base = self.queue
        return try await work.run { try base.claimNext(owner: owner, lease: lease, at: at) }
    }
    public func takeOver(owner: LeaseOwner, lease: Duration, excluding: Set<RunID>,
                  isGone: @escaping @Sendable (LeaseOwner) -> Bool) async throws -> [Run] {
        let base = self.queue
        return try await work.run { try base.takeOver(owner: owner, lease: lease, excluding: excluding, isGone: isGone) }
    }
    public func finish(_ run: RunID, _ event: RunEvent, error: String?, code: RunFailure.Code?, lease: RunLease?, at: Date) async throws {
        let base = self.queue
        return try await work.run { try base.finish(run, event, error: error, code: code, lease: lease, at: at) }
    }
    public func releaseLease(run: RunID, lease: RunLease) async throws {
        let base = self.queue
        return try await work.run { try base.releaseLease(run: run, lease: lease) }
    }
    public func recordInterruption(run: RunID, note: String, at: Date) async throws {
        let base = self.queue
        return try await work.run { try base.recordInterruption(run: run, note: note, at: at) }
    }
    public func interruptions(of run: RunID) async throws -> [String] {
        let base = self.queue
        return try await work.run { try base.interruptions(of: run) }
    }
    public func runs(withStatus status: RunStatus) async throws -> [Run] {
        let base = self.queue
        return try await work.run { try base.runs(withStatus: status) }
    }
}

