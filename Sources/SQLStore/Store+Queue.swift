import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The roll's journal and the dispatcher's queue, over either engine. As a `RunQueue` the
/// store answers where it is called (tests, tools on a store no one else locks); the server
/// awaits it through `QueueOnThreads`, which makes each call on the store's own threads.
extension Store: BlockingRunQueue, RunQueue {
    public func claimNext(owner: LeaseOwner, lease: Duration, at now: Date) throws -> Run? {
        try write { db in
            let until = try engine.leaseNow(db).adding(lease)
            guard let run = try db.prepare("""
                SELECT \(Store.runColumns) FROM runs
                WHERE status = \(RunStatus.queued.sql)
                  AND service NOT IN (SELECT service FROM runs WHERE status = \(RunStatus.running.sql))
                  AND (kind = \(RunKind.Name.restore.sql)
                       OR service NOT IN (SELECT service FROM service_locks WHERE expires_at IS NULL OR expires_at > ?))
                ORDER BY id LIMIT 1\(db.dialect == .postgres ? " FOR UPDATE SKIP LOCKED" : "")
                """).rows([.integer(now.milliseconds)], Store.decodeRun).first else { return nil }
            let status = try run.status.applying(.start)
            let name = replica(of: owner)
            // The time was taken before this transaction saw the service's previous run end
            // (committed meanwhile, its end taken just before its commit): the history never
            // shows two runs of a service overlapping, so this one starts no earlier.
            let previousEnd = try db.prepare("""
                SELECT finished_at FROM runs WHERE service = ? AND id < ? AND started_at IS NOT NULL ORDER BY id DESC LIMIT 1
                """).rows([.text(run.service), .integer(run.id)]) { $0.optionalInt(0) }.first ?? nil
            let started = max(now.milliseconds, previousEnd ?? 0)
            // Several processes may claim at once (replicas on PostgreSQL): a run another one
            // took meanwhile, or a second run of a service another one just started (the
            // index of one running run per service says no), is nothing to claim.
            try db.execute("SAVEPOINT claim")
            do {
                try db.prepare("""
                    UPDATE runs SET status = ?, started_at = ?, lease_owner = ?, lease_expires_at = ?, lease_epoch = lease_epoch + 1, rolled_by = ?
                    WHERE id = ? AND status = ?
                    """).run([.text(status.rawValue), .integer(started), .text(owner.text), .integer(until.milliseconds),
                              .text(name), .integer(run.id), .text(run.status.rawValue)])
                try db.execute("RELEASE SAVEPOINT claim")
            } catch let fault as any StoreFault where fault.isUniqueViolation {
                try db.execute("ROLLBACK TO SAVEPOINT claim")
                try db.execute("RELEASE SAVEPOINT claim")
                return nil
            }
            guard db.changes == 1 else { return nil }
            try Store.recordEvent(db, run: run.id, service: run.service, .started, at: Date(milliseconds: started))
            var claimed = run
            claimed.status = status
            claimed.startedAt = Date(milliseconds: started)
            claimed.lease = RunLease(owner: owner, epoch: (run.lease?.epoch ?? 0) + 1)
            claimed.rolledBy = name
            return claimed
        }
    }

    public func takeOver(owner: LeaseOwner, lease: Duration, excluding: Set<RunID>,
                         isGone: (LeaseOwner) -> Bool) throws -> [Run] {
        try write { db in
            let now = try engine.leaseNow(db), until = now.adding(lease)
            let candidates = try db.prepare("""
                SELECT \(Store.runColumns), lease_owner, lease_expires_at, lease_epoch FROM runs WHERE status = ? ORDER BY id
                """).rows([.text(RunStatus.running.rawValue)]) { row in
                    (Store.decodeRun(row), row.optionalText(Store.runColumnCount), row.optionalInt(Store.runColumnCount + 1),
                     row.int(Store.runColumnCount + 2))
                }
            var taken: [Run] = []
            for (run, holder, expires, epoch) in candidates where !excluding.contains(run.id) {
                let expired = (expires ?? 0) <= now.milliseconds
                let gone = holder.flatMap(LeaseOwner.init).map(isGone) ?? true
                guard expired || gone else { continue }
                // A conditional update on the epoch read: of two processes taking over at
                // once, one wins, and the holding it ends can write nothing more.
                try db.prepare("""
                    UPDATE runs SET lease_owner = ?, lease_expires_at = ?, interruptions = interruptions + 1, lease_epoch = lease_epoch + 1,
                                    rolled_by = ?
                    WHERE id = ? AND status = ? AND lease_epoch = ? AND lease_expires_at IS NOT DISTINCT FROM ?
                    """).run([.text(owner.text), .integer(until.milliseconds), .text(replica(of: owner)), .integer(run.id),
                              .text(RunStatus.running.rawValue), .integer(epoch), expires.map(SQLValue.integer) ?? .null])
                guard db.changes == 1 else { continue }
                var mine = try Store.withSteps(run, db)
                mine.interruptions += 1
                mine.lease = RunLease(owner: owner, epoch: epoch + 1)
                mine.rolledBy = replica(of: owner)
                taken.append(mine)
            }
            return taken
        }
    }

    /// The name written as `rolled_by`: this store's replica name, else the owner's host.
    func replica(of owner: LeaseOwner) -> String { replica.isEmpty ? owner.host : replica }

    public func renewLease(run: RunID, lease: RunLease, for duration: Duration) throws {
        try write { db in try Store.fence(db, run: run, lease: lease, until: try engine.leaseNow(db).adding(duration)) }
    }

    public func releaseLease(run: RunID, lease: RunLease) throws {
        try write { db in
            try db.prepare("UPDATE runs SET lease_expires_at = 0 WHERE id = ? AND lease_owner = ? AND lease_epoch = ?")
                .run([.integer(run), .text(lease.owner.text), .integer(lease.epoch)])
        }
    }

    /// Throws `LeaseLost` unless the running run is still held under `lease` (its owner and
    /// its epoch); extends the lease when given `until`. Called inside the write it guards.
    static func fence(_ db: any SQLSession, run: RunID, lease: RunLease, until: Date? = nil) throws {
        if let until {
            try db.prepare("UPDATE runs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND lease_epoch = ? AND status = ?")
                .run([.integer(until.milliseconds), .integer(run), .text(lease.owner.text), .integer(lease.epoch),
                      .text(RunStatus.running.rawValue)])
            if db.changes != 1 { throw LeaseLost(run: run) }
            return
        }
        let held = try db.prepare("SELECT 1 FROM runs WHERE id = ? AND lease_owner = ? AND lease_epoch = ? AND status = ?")
            .rows([.integer(run), .text(lease.owner.text), .integer(lease.epoch), .text(RunStatus.running.rawValue)]) { _ in true }
        if held.isEmpty { throw LeaseLost(run: run) }
    }

    public func finish(_ id: RunID, _ event: RunEvent, error: String?, code: RunFailure.Code?, lease: RunLease?, at now: Date) throws {
        let ended = try write { db -> (service: String, status: RunStatus, startedAt: Date?)? in
            guard let run = try db.prepare("SELECT \(Store.runColumns) FROM runs WHERE id = ?\(Store.lockingRows(db))")
                .rows([.integer(id)], Store.decodeRun).first else { return nil }
            if let lease { try Store.fence(db, run: id, lease: lease) }
            let status = try run.status.applying(event)
            // A code only where the run failed.
            let code = status == .failed ? (code ?? .unexpected) : nil
            try db.prepare("UPDATE runs SET status = ?, finished_at = ?, error = ?, error_code = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ?")
                .run([.text(status.rawValue), .integer(now.milliseconds), error.map(SQLValue.text) ?? .null,
                      code.map { .text($0.rawValue) } ?? .null, .integer(id)])
            let kind: RunEventKind? = switch status {
            case .succeeded: .succeeded
            case .failed: .failed
            case .cancelled: .cancelled
            default: nil
            }
            if let kind { try Store.recordEvent(db, run: id, service: run.service, kind, detail: error, at: now) }
            return (run.service, status, run.startedAt)
        }
        if let ended {
            metrics.runEnded(service: ended.service, status: ended.status, duration: ended.startedAt.map { now.since($0) })
        }
    }

    public func finish(_ id: RunID, _ event: RunEvent, error: String?, code: RunFailure.Code? = nil, at now: Date) throws {
        try finish(id, event, error: error, code: code, lease: nil, at: now)
    }

    public func recordInterruption(run: RunID, note: String, at now: Date) throws {
        try write { db in
            try db.prepare("INSERT INTO run_interruptions (run_id, at, note) VALUES (?, ?, ?)")
                .run([.integer(run), .integer(now.milliseconds), .text(note)])
        }
    }

    public func interruptions(of run: RunID) throws -> [String] {
        try read { db in
            try db.prepare("SELECT note FROM run_interruptions WHERE run_id = ? ORDER BY at, \(db.dialect == .sqlite ? "rowid" : "id")").rows([.integer(run)]) { $0.text(0) }
        }
    }

    public func runs(withStatus status: RunStatus) throws -> [Run] {
        try read { db in
            try db.prepare("SELECT \(Store.runColumns) FROM runs WHERE status = ? ORDER BY id")
                .rows([.text(status.rawValue)], Store.decodeRun).map { try Store.withSteps($0, db) }
        }
    }

    public func beginStep(run: RunID, target: Target, phase: Phase, at now: Date) throws -> StepID {
        try write { db in try Store.beginStep(db, run: run, target: target, phase: phase, at: now) }
    }

    static func beginStep(_ db: any SQLSession, run: RunID, target: Target, phase: Phase, at now: Date) throws -> StepID {
        let step = try db.prepare("""
            INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at)
            VALUES (?, ?, ?, ?, ?, ?) RETURNING id
            """).rows([.integer(run), .text(target.id), .integer(Int64(target.port)), .text(phase.rawValue),
                       .text(StepStatus.running.rawValue), .integer(now.milliseconds)]) { $0.int(0) }[0]
        try Store.recordStepEvent(db, step: step, .stepStarted, error: nil, at: now)
        return step
    }

    public func endStep(_ step: StepID, _ event: StepEvent, error: String?, at now: Date) throws {
        try write { db in try Store.endStep(db, step, event, error: error, at: now) }
    }

    static func endStep(_ db: any SQLSession, _ step: StepID, _ event: StepEvent, error: String?, at now: Date) throws {
        guard let current = try db.prepare("SELECT status FROM steps WHERE id = ?")
            .rows([.integer(step)], { StepStatus(rawValue: $0.text(0)) }).first, let current else { return }
        let status = try current.applying(event)
        try db.prepare("UPDATE steps SET status = ?, finished_at = ?, error = ? WHERE id = ?")
            .run([.text(status.rawValue), .integer(now.milliseconds), error.map(SQLValue.text) ?? .null, .integer(step)])
        if status != current {
            try Store.recordStepEvent(db, step: step, status == .succeeded ? .stepSucceeded : .stepFailed, error: error, at: now)
        }
    }

    public func noteQuiet(_ step: StepID, quiet: Duration) throws {
        try write { db in try Store.noteQuiet(db, step, quiet: quiet) }
    }

    static func noteQuiet(_ db: any SQLSession, _ step: StepID, quiet: Duration) throws {
        try db.prepare("UPDATE steps SET quiet_ms = ? WHERE id = ? AND phase = 'drain'")
            .run([.integer(Int64(max(0, (quiet.seconds * 1000).rounded()))), .integer(step)])
    }

    /// The run a step belongs to (for fencing writes that name only the step).
    static func run(ofStep step: StepID, _ db: any SQLSession) throws -> RunID? {
        try db.prepare("SELECT run_id FROM steps WHERE id = ?").rows([.integer(step)]) { $0.int(0) }.first
    }

    /// A step's change on the events stream, in the same transaction as the change.
    static func recordStepEvent(_ db: any SQLSession, step: StepID, _ kind: RunEventKind, error: String?, at now: Date) throws {
        try db.prepare("""
            INSERT INTO run_events (run_id, service, event, target_id, phase, detail, at)
            SELECT s.run_id, r.service, ?, s.target_id, s.phase, ?, ? FROM steps s JOIN runs r ON r.id = s.run_id WHERE s.id = ?
            """).run([.text(kind.rawValue), error.map(SQLValue.text) ?? .null, .integer(now.milliseconds), .integer(step)])
    }

    public func recordHookProcess(_ process: HookProcess, step: StepID) throws {
        try write { db in try Store.recordHookProcess(db, process, step: step) }
    }

    static func recordHookProcess(_ db: any SQLSession, _ process: HookProcess, step: StepID) throws {
        try db.prepare("UPDATE steps SET hook_process_group = ? WHERE id = ?").run([.integer(Int64(process.group)), .integer(step)])
    }

    public func log(run: RunID, stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at now: Date) throws {
        try writeLog { db in try Store.insertLog(db, run: run, stream: stream, target: target, phase: phase, text: text, at: now) }
    }

    /// A batch of lines in one transaction: a chatty hook costs one commit per batch.
    public func log(run: RunID, _ lines: [LogEntry]) throws {
        guard !lines.isEmpty else { return }
        try writeLog { db in try Store.log(db, run: run, lines) }
    }

    static func log(_ db: any SQLSession, run: RunID, _ lines: [LogEntry]) throws {
        let insert = try db.prepare(Store.insertLogSQL)   // once for the batch
        for line in lines {
            try insert.run([.integer(run), .integer(line.at.milliseconds), .text(line.stream.rawValue),
                            line.target.map(SQLValue.text) ?? .null, line.phase.map { .text($0.rawValue) } ?? .null, .text(line.text)])
        }
    }

    public func isPromoteRequested(_ run: RunID) throws -> Bool {
        try read { db in
            try db.prepare("SELECT promote_requested FROM runs WHERE id = ?").rows([.integer(run)]) { $0.int(0) != 0 }.first ?? false
        }
    }

    /// Asks a running run to end its canary bake; false if the run is not running.
    public func requestPromote(_ run: RunID) throws -> Bool {
        try write { db in
            try db.prepare("UPDATE runs SET promote_requested = 1 WHERE id = ? AND status = \(RunStatus.running.sql)").run([.integer(run)])
            return db.changes == 1
        }
    }

    public func previousGoodVersion(service: String, before run: RunID, otherThan version: String) throws -> String? {
        try read { db in
            try db.prepare(Store.previousGoodQuery).rows([.text(service), .integer(run), .text(version)]) { $0.text(0) }.first
        }
    }

    static let previousGoodQuery = Query("""
        SELECT version FROM runs WHERE service = ? AND status = \(RunStatus.succeeded.sql) AND kind = \(RunKind.Name.deploy.sql) AND id < ? AND version != ?
        ORDER BY id DESC LIMIT 1
        """)

    public func recordRollback(run: RunID, to version: String?, cause: RunFailure?, at now: Date) throws {
        try write { db in try Store.recordRollback(db, run: run, to: version, cause: cause) }
    }

    /// The rollback's version, its cause and the step it began after; every target the run
    /// touched then owes it. Ending a rollback that could not finish (`to` nil) keeps the rest.
    static func recordRollback(_ db: any SQLSession, run: RunID, to version: String?, cause: RunFailure?) throws {
        guard let version else {
            try db.prepare("UPDATE runs SET rollback_to = NULL WHERE id = ?").run([.integer(run)])
            return
        }
        try db.prepare("""
            UPDATE runs SET rollback_to = ?, rollback_cause = ?, error_code = ?,
                   rollback_after_step = (SELECT coalesce(max(id), 0) FROM steps WHERE run_id = runs.id)
            WHERE id = ?
            """).run([.text(version), cause.map { .text($0.message) } ?? .null, cause.map { .text($0.code.rawValue) } ?? .null, .integer(run)])
        try db.prepare("UPDATE run_targets SET rollback = ? WHERE run_id = ? AND progress <> ? AND rollback IS NULL")
            .run([.text(RollbackProgress.pending.rawValue), .integer(run), .text(TargetProgress.pending.rawValue)])
    }

    public func recordBake(run: RunID, elapsed: Duration) throws {
        try write { db in try Store.recordBake(db, run: run, elapsed: elapsed) }
    }

    static func recordBake(_ db: any SQLSession, run: RunID, elapsed: Duration) throws {
        try db.prepare("UPDATE runs SET bake_elapsed_ms = ? WHERE id = ?")
            .run([.integer(max(0, Int64((elapsed.seconds * 1000).rounded()))), .integer(run)])
    }

    public func bakeElapsed(of run: RunID) throws -> Duration? {
        try read { db in
            try db.prepare("SELECT bake_elapsed_ms FROM runs WHERE id = ?").rows([.integer(run)]) { $0.optionalInt(0) }
                .first?.flatMap { Duration.milliseconds($0) }
        }
    }

    public func isCancelRequested(_ run: RunID) throws -> Bool {
        try read { db in
            try db.prepare("SELECT cancel_requested FROM runs WHERE id = ?").rows([.integer(run)]) { $0.int(0) != 0 }.first ?? false
        }
    }
}

extension Store: SimulatedTargetStore {
    public func simulatedTargets(service: String) throws -> [SimulatedTarget] {
        try read { db in
            try db.prepare("SELECT target_id, port, registered, changed_at FROM simulated_targets WHERE service = ? ORDER BY target_id")
                .rows([.text(service)]) { row in
                    SimulatedTarget(target: Target(id: row.text(0), port: Int(row.int(1))), registered: row.int(2) != 0,
                                    changedAt: Date(milliseconds: row.int(3)))
                }
        }
    }

    public func saveSimulatedTarget(service: String, _ target: SimulatedTarget) throws {
        try write { db in
            try db.prepare("""
                INSERT INTO simulated_targets (service, target_id, port, registered, changed_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (service, target_id) DO UPDATE SET port = excluded.port, registered = excluded.registered,
                    changed_at = excluded.changed_at
                """).run([.text(service), .text(target.target.id), .integer(Int64(target.target.port)),
                          .integer(target.registered ? 1 : 0), .integer(target.changedAt.milliseconds)])
        }
    }
}
