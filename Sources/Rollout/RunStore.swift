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

public protocol RunJournal: Sendable {
    func beginStep(run: RunID, target: Target, phase: Phase, at: Date) throws -> StepID
    func endStep(_ step: StepID, _ event: StepEvent, error: String?, at: Date) throws
    func recordHookProcess(_ process: HookProcess, step: StepID) throws
    /// How long the target of a drain step had been quiet when the drain ended (fast drain's
    /// check passing until then): the idle share `rollgate plan` reports.
    func noteQuiet(_ step: StepID, quiet: Duration) throws
    func log(run: RunID, stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at: Date) throws
    /// Many lines in order, all or none (one transaction where the journal has them).
    func log(run: RunID, _ lines: [LogEntry]) throws
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

/// The durable queue the dispatcher takes runs from. Lease times are the store's: callers
/// say how long, the store computes and compares expiries on its own clock (SQLite: this
/// host's; an engine with a server clock uses that), so no two processes compare times taken
/// from two clocks.
public protocol RunQueue: RunJournal {
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

extension RunJournal {
    /// One at a time, for journals without transactions.
    public func log(run: RunID, _ lines: [LogEntry]) throws {
        for line in lines { try log(run: run, stream: line.stream, target: line.target, phase: line.phase, text: line.text, at: line.at) }
    }
}
