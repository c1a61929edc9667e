#if canImport(Glibc)
import Glibc
#endif
import Rollout
import RolloutTesting
@testable import SQLiteStore
@testable import SQLStore
import Synchronization
import Foundation

/// The roll's tests run on the real store: SQLite in a file of its own, with every migration,
/// so each rule the schema keeps holds in the tests too (a fake that kept fewer rules let
/// batches pass here and fail in production). The files go when the test process exits.
extension Store {
    /// `leaseClock`: the clock lease expiries are computed on (the test's own, when the
    /// test moves time past a lease).
    static func forTests(leaseClock: any RolloutClock = SystemClock()) throws -> Store {
        let directory = TestDatabases.directory + "/\(TestDatabases.next())"
        mkdir(directory, 0o700)
        return try Store(path: directory + "/rollgate.db", migrator: Migrator(directory: TestDatabases.migrations), leaseClock: leaseClock)
    }

    /// Queues a deploy the way the API does.
    @discardableResult
    func enqueue(service: String, version: String, at now: Date) throws -> Run {
        switch try enqueue(service: service, version: version, reason: nil, requestedBy: "test", idempotencyKey: nil, at: now) {
        case .created(let run, _), .replayed(let run), .keyConflict(let run): return run
        }
    }

    /// Puts a run as a crashed process (or an older rollgate) left it: running, with its steps
    /// (their ids kept), and no lease until `setLease`; or a finished run, for history.
    func insert(_ run: Run) throws {
        try write { db in
            try db.prepare("""
                INSERT INTO runs (id, service, version, requested_by, status, created_at, started_at, finished_at, error, interruptions)
                VALUES (?, ?, ?, 'test', ?, ?, ?, ?, ?, ?)
                """).run([.integer(run.id), .text(run.service), .text(run.version), .text(run.status.rawValue),
                          .integer(run.createdAt.milliseconds), run.startedAt.map { .integer($0.milliseconds) } ?? .null,
                          run.finishedAt.map { .integer($0.milliseconds) } ?? .null, run.error.map(SQLValue.text) ?? .null,
                          .integer(Int64(run.interruptions))])
            for step in run.steps {
                try db.prepare("""
                    INSERT INTO steps (id, run_id, target_id, target_port, phase, status, started_at, finished_at, error, hook_process_group)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).run([.integer(step.id), .integer(run.id), .text(step.targetID), .integer(Int64(step.targetPort)),
                              .text(step.phase.rawValue), .text(step.status.rawValue), .integer(step.startedAt.milliseconds),
                              step.finishedAt.map { .integer($0.milliseconds) } ?? .null, step.error.map(SQLValue.text) ?? .null,
                              step.hookProcess.map { .integer(Int64($0.group)) } ?? .null])
            }
        }
    }

    /// Gives the run to `owner` until `until` as a claim would (a new epoch); returns the holding.
    @discardableResult
    func setLease(of run: RunID, owner: LeaseOwner, until: Date) throws -> RunLease {
        try write { db in
            try db.prepare("UPDATE runs SET lease_owner = ?, lease_expires_at = ?, lease_epoch = lease_epoch + 1 WHERE id = ?")
                .run([.text(owner.text), .integer(until.milliseconds), .integer(run)])
            let epoch = try db.prepare("SELECT lease_epoch FROM runs WHERE id = ?").rows([.integer(run)]) { $0.int(0) }.first ?? 0
            return RunLease(owner: owner, epoch: epoch)
        }
    }

    func lease(of run: RunID) throws -> (owner: LeaseOwner, until: Date, epoch: Int64)? {
        try read { db in
            try db.prepare("SELECT lease_owner, lease_expires_at, lease_epoch FROM runs WHERE id = ? AND lease_owner IS NOT NULL")
                .rows([.integer(run)]) { row in
                    LeaseOwner(row.text(0)).map { ($0, Date(milliseconds: row.int(1)), row.int(2)) }
                }.first ?? nil
        }
    }

    /// Asks the run to stop, as `POST /api/v1/runs/ID/cancel` does (from a hook's thread too).
    func requestCancel(_ id: RunID) {
        _ = try? requestCancel(id, at: Date())
    }

    func bumpInterruptions(of run: RunID) throws {
        try write { db in try db.prepare("UPDATE runs SET interruptions = interruptions + 1 WHERE id = ?").run([.integer(run)]) }
    }

    /// Every log line of every run, in the order stored.
    var logs: [LogLine] {
        get throws {
            try read { db in
                try db.prepare("SELECT id FROM runs ORDER BY id").rows([]) { $0.int(0) }
            }.flatMap { try logs(run: $0, after: 0, limit: 1_000_000) }.sorted { $0.seq < $1.seq }
        }
    }
}

enum TestDatabases {
    private static let counter = Atomic<Int>(0)
    static func next() -> Int { counter.add(1, ordering: .relaxed).newValue }

    /// One directory per test process, removed at exit.
    static let directory: String = {
        var template = Array("/tmp/rollgate-rollout-tests-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        atexit { TestDatabases.removeAll() }
        return path
    }()

    static func removeAll() {
        _ = try? FileManager.default.removeItem(atPath: directory)
    }

    /// The project's own migrations/ directory.
    static let migrations: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/migrations"
    }()
}

/// A journal in front of the real store that lets a test hold back or refuse a batch of log
/// lines, or refuse a state write (named by what it writes), before it reaches the store.
final class GatedJournal: RunJournal {
    let store: Store
    let beforeLogBatch = Mutex<(@Sendable ([LogEntry]) throws -> Void)?>(nil)
    let beforeStateWrite = Mutex<(@Sendable (String) throws -> Void)?>(nil)
    init(_ store: Store) { self.store = store }

    private func gate(_ what: String) throws {
        if let gate = beforeStateWrite.withLock({ $0 }) { try gate(what) }
    }

    func log(run: RunID, _ lines: [LogEntry]) throws {
        if let gate = beforeLogBatch.withLock({ $0 }) { try gate(lines) }
        try store.log(run: run, lines)
    }
    func log(run: RunID, stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at: Date) throws {
        try log(run: run, [LogEntry(stream: stream, target: target, phase: phase, text: text, at: at)])
    }
    func beginStep(run: RunID, target: Target, phase: Phase, at: Date) throws -> StepID {
        try gate("beginStep"); return try store.beginStep(run: run, target: target, phase: phase, at: at)
    }
    func endStep(_ step: StepID, _ event: StepEvent, error: String?, at: Date) throws {
        try gate("endStep"); try store.endStep(step, event, error: error, at: at)
    }
    func recordHookProcess(_ process: HookProcess, step: StepID) throws { try store.recordHookProcess(process, step: step) }
    func noteQuiet(_ step: StepID, quiet: Duration) throws { try store.noteQuiet(step, quiet: quiet) }
    func isCancelRequested(_ run: RunID) throws -> Bool { try store.isCancelRequested(run) }
    func plan(of run: RunID) throws -> [PlannedTarget] { try store.plan(of: run) }
    func freezePlan(run: RunID, targets: [Target]) throws -> [PlannedTarget] {
        try gate("freezePlan"); return try store.freezePlan(run: run, targets: targets)
    }
    func markOut(run: RunID, service: String, target: Target, phase: Phase, reason: String, lease: RunLease, at: Date) throws {
        try gate("markOut"); try store.markOut(run: run, service: service, target: target, phase: phase, reason: reason, lease: lease, at: at)
    }
    func markDone(run: RunID, service: String, target: Target, lease: RunLease, at: Date) throws {
        try store.markDone(run: run, service: service, target: target, lease: lease, at: at)
    }
    func noteLeftOut(service: String, target: Target, run: RunID, phase: Phase, reason: String, at: Date) throws {
        try store.noteLeftOut(service: service, target: target, run: run, phase: phase, reason: reason, at: at)
    }
    func leftOut(service: String) throws -> [LeftOutTarget] { try store.leftOut(service: service) }
    func renewLease(run: RunID, lease: RunLease, for duration: Duration) throws { try store.renewLease(run: run, lease: lease, for: duration) }
    func isPromoteRequested(_ run: RunID) throws -> Bool { try store.isPromoteRequested(run) }
    func previousGoodVersion(service: String, before run: RunID, otherThan version: String) throws -> String? {
        try store.previousGoodVersion(service: service, before: run, otherThan: version)
    }
    func recordRollback(run: RunID, to version: String?, cause: RunFailure?, at: Date) throws {
        try gate("recordRollback"); try store.recordRollback(run: run, to: version, cause: cause, at: at)
    }
    func recordBake(run: RunID, elapsed: Duration) throws { try store.recordBake(run: run, elapsed: elapsed) }
    func bakeElapsed(of run: RunID) throws -> Duration? { try store.bakeElapsed(of: run) }
}
