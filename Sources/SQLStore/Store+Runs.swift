import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What became of a deploy request.
extension Store {
    static let runColumns = "id, service, version, reason, requested_by, status, created_at, started_at, finished_at, error, cancel_requested, kind, restore_target_id, restore_target_port, wait_for_lock, interruptions, promote_requested, rollback_to, rollback_cause, rollback_after_step, lease_owner, lease_epoch, rolled_by, error_code, rollback_from"
    static let runColumnCount = Int32(runColumns.split(separator: ",").count)
    static let stepColumns = "id, run_id, target_id, target_port, phase, status, started_at, finished_at, error, hook_process_group"

    /// Queues a run; a queued run of the same service is superseded by it, in one transaction.
    public func enqueue(service: String, version: String, reason: String?, requestedBy: String,
                        idempotencyKey: String?, kind: RunKind = .deploy, waitForLock: Bool = false,
                        rollbackFrom: String? = nil, at now: Date) throws -> Enqueued {
        var restoreTarget: Target?
        if case .restore(let target) = kind { restoreTarget = target }
        let enqueued = try write { db -> Enqueued in
            if let key = idempotencyKey,
               let existing = try db.prepare("SELECT \(Store.runColumns) FROM runs WHERE idempotency_key = ?")
                .rows([.text(key)], Store.decodeRun).first {
                // Checked and inserted in one transaction: of identical requests sent at once,
                // the first creates the run and the others find it.
                let same = existing.service == service && existing.version == version && existing.reason == reason
                    && existing.requestedBy == requestedBy && existing.waitForLock == waitForLock
                return same ? .replayed(try Store.withSteps(existing, db)) : .keyConflict(existing)
            }
            // A newer deploy supersedes a queued deploy; a queued restore is never dropped. The
            // queued runs are locked as they are read (PostgreSQL: another replica's claim skips
            // them), and each is superseded only while still queued: a run another process
            // started meanwhile is never marked superseded under it.
            let candidates = kind != .deploy ? [] : try db.prepare(
                "SELECT id FROM runs WHERE service = ? AND status = \(RunStatus.queued.sql) AND kind = \(RunKind.Name.deploy.sql)\(Store.lockingRows(db))")
                .rows([.text(service)]) { $0.int(0) }
            var superseded: [RunID] = []
            for id in candidates {
                let status = try RunStatus.queued.applying(.supersede)
                try db.prepare("UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ? AND status = \(RunStatus.queued.sql)")
                    .run([.text(status.rawValue), .integer(now.milliseconds), .null, .integer(id)])
                if db.changes == 1 { superseded.append(id) }
            }
            let values: [SQLValue] = [.text(service), .text(version), reason.map(SQLValue.text) ?? .null,
                                      .text(requestedBy), .integer(now.milliseconds), idempotencyKey.map(SQLValue.text) ?? .null,
                                      .text(kind.name), restoreTarget.map { .text($0.id) } ?? .null,
                                      restoreTarget.map { .integer(Int64($0.port)) } ?? .null, .integer(waitForLock ? 1 : 0),
                                      rollbackFrom.map(SQLValue.text) ?? .null]
            let id = try db.prepare("""
                INSERT INTO runs (service, version, reason, requested_by, status, created_at, idempotency_key,
                                  kind, restore_target_id, restore_target_port, wait_for_lock, rollback_from)
                VALUES (?, ?, ?, ?, \(RunStatus.queued.sql), ?, ?, ?, ?, ?, ?, ?) RETURNING id
                """).rows(values) { $0.int(0) }[0]
            try Store.recordEvent(db, run: id, service: service, .queued, detail: reason, at: now)
            for old in superseded {
                // The run says which run took its place.
                try db.prepare("UPDATE runs SET error = ? WHERE id = ?").run([.text("superseded by run \(id) (\(version))"), .integer(old)])
                try Store.insertLog(db, run: old, stream: .system, target: nil, phase: nil,
                                    text: "superseded by run \(id) (\(service) \(version)) before it started", at: now)
            }
            var run = Run(id: id, service: service, version: version, reason: reason, requestedBy: requestedBy,
                          status: .queued, createdAt: Date(milliseconds: now.milliseconds))
            run.kind = kind
            run.waitForLock = waitForLock
            run.rollbackFrom = rollbackFrom
            return .created(run, superseded: superseded)
        }
        if case .created(_, let superseded) = enqueued {
            for _ in superseded { metrics.runEnded(service: service, status: .superseded, duration: nil) }
        }
        return enqueued
    }

    /// The run an Idempotency-Key was first used for.
    public func run(idempotencyKey key: String) throws -> Run? {
        try read { db in
            try db.prepare("SELECT \(Store.runColumns) FROM runs WHERE idempotency_key = ?").rows([.text(key)], Store.decodeRun).first
        }
    }

    /// The hottest read (`GET /api/v1/runs/{id}`): its SQL is built once, not per request.
    static let runByID = Query("SELECT \(Store.runColumns) FROM runs WHERE id = ?")
    static let stepsOfRun = Query("SELECT \(stepColumns) FROM steps WHERE run_id = ? ORDER BY id")
    static let begin = Query("BEGIN")
    static let commit = Query("COMMIT")

    public func run(_ id: RunID) throws -> Run? {
        try read { db in
            // One read transaction for the run and its steps: one snapshot, one lock cycle.
            try db.prepare(Store.begin).run()
            defer { try? db.prepare(Store.commit).run() }
            guard let run = try db.prepare(Store.runByID).rows([.integer(id)], Store.decodeRun).first else { return nil }
            return try Store.withSteps(run, db)
        }
    }

    /// Newest first, with their steps.
    public func runs(_ filter: RunFilter) throws -> [Run] {
        try read { db in
            let (sql, values) = Store.runsQuery(filter)
            let runs = try db.prepare(sql).rows(values, Store.decodeRun)
            return try runs.map { try Store.withSteps($0, db) }
        }
    }

    /// A page of runs, newest first: each filter an index serves (runs_service_status,
    /// runs_service, runs_status, the primary key), whichever are given.
    static func runsQuery(_ filter: RunFilter) -> (String, [SQLValue]) {
        var conditions: [String] = []
        var values: [SQLValue] = []
        if let service = filter.service { conditions.append("service = ?"); values.append(.text(service)) }
        if let status = filter.status { conditions.append("status = ?"); values.append(.text(status.rawValue)) }
        if let before = filter.before { conditions.append("id < ?"); values.append(.integer(before)) }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        values.append(.integer(Int64(filter.limit)))
        return ("SELECT \(Store.runColumns) FROM runs \(whereClause) ORDER BY id DESC LIMIT ?", values)
    }

    /// A service's last good version: its newest succeeded deploy.
    static let lastGoodQuery = Query("""
        SELECT version, id FROM runs WHERE service = ? AND status = \(RunStatus.succeeded.sql) AND kind = \(RunKind.Name.deploy.sql) ORDER BY id DESC LIMIT 1
        """)

    /// The sequence number just before the run's last `count` lines (0 when it has no more
    /// than that), from the index: where a tail of its last lines starts.
    public func logSeq(run: RunID, beforeLast count: Int) throws -> Int64 {
        try read { db in
            try db.prepare("SELECT seq FROM log_lines WHERE run_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?")
                .rows([.integer(run), .integer(Int64(count))]) { $0.int(0) }.first ?? 0
        }
    }

    public func logs(run: RunID, after: Int64, limit: Int) throws -> [LogLine] {
        try read { db in
            try db.prepare("""
                SELECT seq, run_id, at, stream, target_id, phase, text FROM log_lines
                WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?
                """).rows([.integer(run), .integer(after), .integer(Int64(limit))]) { row in
                LogLine(seq: row.int(0), runID: row.int(1), at: Date(milliseconds: row.int(2)),
                        stream: LogLine.Stream(rawValue: row.text(3)) ?? .system,
                        targetID: row.optionalText(4), phase: row.optionalText(5).flatMap(Phase.init(rawValue:)),
                        text: row.text(6))
            }
        }
    }

    /// Asks a run to stop: a queued one is cancelled at once, a running one after the
    /// target in hand is back. Returns the run as it is now, or nil if there is none.
    public func requestCancel(_ id: RunID, at now: Date) throws -> Run? {
        try write { db in
            // Locked as it is read: a claim by another replica waits, or skips it, until this ends.
            guard let run = try db.prepare("SELECT \(Store.runColumns) FROM runs WHERE id = ?\(Store.lockingRows(db))")
                .rows([.integer(id)], Store.decodeRun).first else { return nil }
            switch run.status {
            case .queued:
                let status = try run.status.applying(.cancel)
                try db.prepare("UPDATE runs SET status = ?, finished_at = ?, cancel_requested = 1 WHERE id = ?")
                    .run([.text(status.rawValue), .integer(now.milliseconds), .integer(id)])
                try Store.insertLog(db, run: id, stream: .system, target: nil, phase: nil, text: "cancelled before it started", at: now)
            case .running:
                try db.prepare("UPDATE runs SET cancel_requested = 1 WHERE id = ?").run([.integer(id)])
                try Store.insertLog(db, run: id, stream: .system, target: nil, phase: nil,
                                    text: "cancel requested: stopping once the target in hand is back in service", at: now)
            default:
                break
            }
            return try db.prepare("SELECT \(Store.runColumns) FROM runs WHERE id = ?")
                .rows([.integer(id)], Store.decodeRun).first.map { try Store.withSteps($0, db) }
        }
    }

    /// ` FOR UPDATE` on PostgreSQL: the rows a write reads and then changes are locked as they
    /// are read, so another replica cannot change them in between. SQLite has one writer at a
    /// time already.
    static func lockingRows(_ db: any SQLSession) -> String { db.dialect == .postgres ? " FOR UPDATE" : "" }

    /// For each service name: its last succeeded version and its running and queued runs.
    public func serviceSummary(_ service: String) throws -> ServiceSummary {
        try read { db in
            let lastGood = try db.prepare(Store.lastGoodQuery).rows([.text(service)]) { ($0.text(0), $0.int(1)) }.first
            let running = try db.prepare("SELECT \(Store.runColumns) FROM runs WHERE service = ? AND status = \(RunStatus.running.sql)")
                .rows([.text(service)], Store.decodeRun).first
            let queued = try db.prepare("SELECT id FROM runs WHERE service = ? AND status = \(RunStatus.queued.sql) ORDER BY id")
                .rows([.text(service)]) { $0.int(0) }
            var summary = ServiceSummary(name: service, lastGoodVersion: lastGood?.0, lastGoodRunID: lastGood?.1,
                                         running: try running.map { try Store.withSteps($0, db) }, queued: queued,
                                         leftOut: try Store.leftOut(db, service: service),
                                         lock: try Store.lock(db, service: service),
                                         changedHealthChecks: try Store.changedHealthChecks(db, service: service, targetGroup: nil),
                                         versions: try Store.targetVersions(db, service: service))
            if let running {
                let planned = try db.prepare("SELECT count(*) FROM run_targets WHERE run_id = ?").rows([.integer(running.id)]) { $0.int(0) }.first ?? 0
                summary.runningPlanned = planned > 0 ? Int(planned) : nil
            }
            return summary
        }
    }

    public func targetVersions(service: String) throws -> [TargetVersion] {
        try read { db in try Store.targetVersions(db, service: service) }
    }

    static func targetVersions(_ db: any SQLSession, service: String) throws -> [TargetVersion] {
        try db.prepare("SELECT target_id, target_port, version, run_id, at FROM target_versions WHERE service = ? ORDER BY target_id, target_port")
            .rows([.text(service)]) { row in
                TargetVersion(target: Target(id: row.text(0), port: Int(row.int(1))), version: row.text(2), runID: row.int(3),
                              at: Date(milliseconds: row.int(4)))
            }
    }

    /// How many runs each service has in each status.
    /// SQLite is told which index: the planner's statistics may not know how few runs are active.
    static func activeRunCountsSQL(_ dialect: SQLDialect) -> String {
        "SELECT service, status, COUNT(*) FROM runs \(dialect == .sqlite ? "INDEXED BY runs_status " : "")"
            + "WHERE status IN (\(RunStatus.queued.sql), \(RunStatus.running.sql)) GROUP BY service, status"
    }

    /// Queued and running runs by service, from the status index: a scrape's cost does not
    /// grow with the history.
    public func activeRunCounts() throws -> [(service: String, status: RunStatus, count: Int)] {
        try read { db in
            try db.prepare(Store.activeRunCountsSQL(db.dialect))
                .rows([]) { row in (row.text(0), RunStatus(rawValue: row.text(1)) ?? .failed, Int(row.int(2))) }
        }
    }

    static func decodeRun(_ row: any SQLRow) -> Run {
        var run = Run(id: row.int(0), service: row.text(1), version: row.text(2), reason: row.optionalText(3),
            requestedBy: row.text(4), status: row.value(5) ?? RunStatus.failed,
            createdAt: Date(milliseconds: row.int(6)), startedAt: row.optionalInt(7).map(Date.init(milliseconds:)),
            finishedAt: row.optionalInt(8).map(Date.init(milliseconds:)), error: row.optionalText(9),
            cancelRequested: row.int(10) != 0)
        if row.text(11) == RunKind.Name.restore.rawValue, let id = row.optionalText(12), let port = row.optionalInt(13) {
            run.kind = .restore(Target(id: id, port: Int(port)))
        }
        run.waitForLock = row.int(14) != 0
        run.interruptions = Int(row.int(15))
        run.promoteRequested = row.int(16) != 0
        run.rollbackTo = row.optionalText(17)
        run.rollbackCause = row.optionalText(18)
        run.rollbackAfterStep = row.optionalInt(19)
        if let owner = row.optionalText(20).flatMap(LeaseOwner.init) { run.lease = RunLease(owner: owner, epoch: row.int(21)) }
        run.rolledBy = row.optionalText(22)
        run.errorCode = row.optionalText(23).flatMap(RunFailure.Code.init(rawValue:))
        run.rollbackFrom = row.optionalText(24)
        return run
    }

    static func decodeStep(_ row: any SQLRow) -> Step {
        Step(id: row.int(0), runID: row.int(1), targetID: row.text(2), targetPort: Int(row.int(3)),
             phase: row.value(4) ?? Phase.deploy, status: row.value(5) ?? StepStatus.failed,
             startedAt: Date(milliseconds: row.int(6)), finishedAt: row.optionalInt(7).map(Date.init(milliseconds:)),
             error: row.optionalText(8), hookProcess: row.optionalInt(9).map { HookProcess(group: Int32($0)) })
    }

    static func withSteps(_ run: Run, _ db: any SQLSession) throws -> Run {
        var run = run
        run.steps = try db.prepare(stepsOfRun).rows([.integer(run.id)], decodeStep)
        return run
    }

    static let insertLogSQL = "INSERT INTO log_lines (run_id, at, stream, target_id, phase, text) VALUES (?, ?, ?, ?, ?, ?)"

    static func insertLog(_ db: any SQLSession, run: RunID, stream: LogLine.Stream, target: String?, phase: Phase?,
                          text: String, at now: Date) throws {
        try db.prepare(Store.insertLogSQL)
            .run([.integer(run), .integer(now.milliseconds), .text(stream.rawValue),
                  target.map(SQLValue.text) ?? .null, phase.map { .text($0.rawValue) } ?? .null, .text(text)])
    }
}

