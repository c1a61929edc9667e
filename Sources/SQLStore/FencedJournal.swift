import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The store as one holding of a run sees it: every write of the run (its steps, log lines,
/// hook processes, left-out notes, rollback mark, bake progress, plan, progress) first checks,
/// in the same transaction, that the run is still held under `lease` (its owner and epoch),
/// and throws `LeaseLost` otherwise. A process that lost a run (stopped past its lease, then
/// continued), or an older holding of the same process, can then write nothing into it: not a
/// step, not a line, not "interrupted". Reads pass through.
/// As a `RunJournal` it answers where it is called (tests); the server's rolls await it
/// through `JournalOnThreads`.
public struct FencedJournal: BlockingRunJournal, RunJournal {
    public let store: Store
    public let lease: RunLease

    public init(store: Store, lease: RunLease) {
        self.store = store
        self.lease = lease
    }

    private func fenced<T>(_ run: RunID, _ body: (any SQLSession) throws -> T) throws -> T {
        try store.write { db in
            try Store.fence(db, run: run, lease: lease)
            return try body(db)
        }
    }

    private func fencedStep<T>(_ step: StepID, _ body: (any SQLSession) throws -> T) throws -> T {
        try store.write { db in
            guard let run = try Store.run(ofStep: step, db) else { throw LeaseLost(run: 0) }
            try Store.fence(db, run: run, lease: lease)
            return try body(db)
        }
    }

    public func beginStep(run: RunID, target: Target, phase: Phase, at now: Date) throws -> StepID {
        try fenced(run) { try Store.beginStep($0, run: run, target: target, phase: phase, at: now) }
    }

    public func endStep(_ step: StepID, _ event: StepEvent, error: String?, at now: Date) throws {
        try fencedStep(step) { try Store.endStep($0, step, event, error: error, at: now) }
    }

    public func noteQuiet(_ step: StepID, quiet: Duration) throws {
        try fencedStep(step) { try Store.noteQuiet($0, step, quiet: quiet) }
    }

    public func recordHookProcess(_ process: HookProcess, step: StepID) throws {
        try fencedStep(step) { try Store.recordHookProcess($0, process, step: step) }
    }

    public func log(run: RunID, stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at now: Date) throws {
        try log(run: run, [LogEntry(stream: stream, target: target, phase: phase, text: text, at: now)])
    }

    public func log(run: RunID, _ lines: [LogEntry]) throws {
        guard !lines.isEmpty else { return }
        try store.writeLog { db in
            try Store.fence(db, run: run, lease: lease)
            try Store.log(db, run: run, lines)
        }
    }

    public func isCancelRequested(_ run: RunID) throws -> Bool { try store.isCancelRequested(run) }
    public func plan(of run: RunID) throws -> [PlannedTarget] { try store.plan(of: run) }

    public func freezePlan(run: RunID, targets: [Target]) throws -> [PlannedTarget] {
        try fenced(run) { try Store.freezePlan($0, run: run, targets: targets) }
    }

    public func markOut(run: RunID, service: String, target: Target, phase: Phase, reason: String,
                        lease: RunLease, at now: Date) throws {
        try store.markOut(run: run, service: service, target: target, phase: phase, reason: reason, lease: lease, at: now)
    }

    public func markDone(run: RunID, service: String, target: Target, lease: RunLease, at now: Date) throws {
        try store.markDone(run: run, service: service, target: target, lease: lease, at: now)
    }

    public func noteLeftOut(service: String, target: Target, run: RunID, phase: Phase, reason: String, at now: Date) throws {
        try fenced(run) { try Store.noteLeftOut($0, service: service, target: target, run: run, phase: phase, reason: reason, at: now) }
    }

    public func leftOut(service: String) throws -> [LeftOutTarget] { try store.leftOut(service: service) }

    public func renewLease(run: RunID, lease: RunLease, for duration: Duration) throws {
        try store.renewLease(run: run, lease: lease, for: duration)
    }

    public func isPromoteRequested(_ run: RunID) throws -> Bool { try store.isPromoteRequested(run) }

    public func previousGoodVersion(service: String, before run: RunID, otherThan version: String) throws -> String? {
        try store.previousGoodVersion(service: service, before: run, otherThan: version)
    }

    public func recordRollback(run: RunID, to version: String?, cause: RunFailure?, at now: Date) throws {
        try fenced(run) { try Store.recordRollback($0, run: run, to: version, cause: cause) }
    }

    public func recordBake(run: RunID, elapsed: Duration) throws {
        try fenced(run) { try Store.recordBake($0, run: run, elapsed: elapsed) }
    }

    public func bakeElapsed(of run: RunID) throws -> Duration? { try store.bakeElapsed(of: run) }
}

extension Store {
    /// This store as the roll of one holding must use it: every write of the run fenced by it.
    public func fenced(by lease: RunLease) -> FencedJournal { FencedJournal(store: self, lease: lease) }
}
