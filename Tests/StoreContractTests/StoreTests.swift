import Testing
import Rollout
import RolloutTesting
@testable import SQLiteStore
@testable import SQLStore

/// A database file in a fresh temporary directory, removed afterwards.
final class TempDatabase {
    let directory: String
    var path: String { directory + "/rollgate.db" }

    init() {
        var template = Array("/tmp/rollgate-test-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    deinit { _ = try? FileManager.default.removeItem(atPath: directory) }
}

/// The project's own migrations/ directory.
let migrationsDirectory: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path + "/migrations"
}()

#if canImport(Glibc)
import Glibc
import Foundation
#endif

@Suite struct MigratorTests {
    @Test func appliesEveryMigrationInOrderOnceAndRecordsThem() throws {
        let db = TempDatabase()
        let migrator = try Migrator(directory: migrationsDirectory)
        #expect(migrator.migrations.map(\.version) == Array(1...19))
        let connection = try Connection(path: db.path)
        #expect(try migrator.migrate(connection) == Array(1...19))
        #expect(try migrator.migrate(connection) == [])
        #expect(try migrator.currentVersion(of: connection) == 19)
        let recorded = try connection.prepare("SELECT version, name FROM schema_migrations ORDER BY version").rows { "\($0.int(0)) \($0.text(1))" }
        #expect(recorded == ["1 runs_steps_logs", "2 simulated_targets", "3 hook_process_group", "4 plans_leases_left_out_locks", "5 run_events_deliveries", "6 live_events", "7 canary_rollback", "8 log_lines_plain_checks", "9 seen_requests", "10 running_step_per_target", "11 lease_epoch_rollback_bake", "12 changed_health_checks", "13 history_indexes_pruning", "14 drain_quiet", "15 rolled_by", "16 error_code", "17 target_versions", "18 forget_event_rollback_runs", "19 replicas"])
    }

    @Test func eachMigrationAppliesOnTopOfThePreviousVersionKeepingData() throws {
        let db = TempDatabase()
        let all = try Migrator(directory: migrationsDirectory)
        for version in all.migrations.map(\.version) {
            let upTo = try Migrator(migrations: all.migrations.filter { $0.version <= version })
            let connection = try Connection(path: db.path)
            try upTo.migrate(connection)
            try connection.prepare("INSERT INTO runs (service, version, requested_by, status, created_at) VALUES (?, ?, 'test', 'queued', 0)")
                .run([.text("web"), .text("v\(version)")])
            #expect(try upTo.currentVersion(of: connection) == version)
            let versions = try connection.prepare("SELECT version FROM runs ORDER BY id").rows { $0.text(0) }
            #expect(versions == (1...version).map { "v\($0)" })
        }
    }

    /// A connection to `db` with foreign keys on, migrated up to `version` only; `all` takes it
    /// the rest of the way (a rebuilding migration is tested on the rows an older one left).
    func migrated(_ db: TempDatabase, upTo version: Int) throws -> (connection: Connection, all: Migrator) {
        let all = try Migrator(directory: migrationsDirectory)
        let connection = try Connection(path: db.path)
        try connection.execute("PRAGMA foreign_keys = ON")
        try Migrator(migrations: all.migrations.filter { $0.version <= version }).migrate(connection)
        return (connection, all)
    }

    /// 0006 rebuilds run_events under deliveries that refer to it: nothing delivered or
    /// pending is lost, and no event number is ever handed out twice.
    @Test func theEventLogRebuildKeepsDeliveriesAndNeverReusesASequenceNumber() throws {
        let db = TempDatabase()
        let (connection, all) = try migrated(db, upTo: 5)
        for seq in 1...3 {
            try connection.prepare("INSERT INTO run_events (run_id, service, event, at) VALUES (1, 'web', 'queued', ?)").run([.integer(Int64(seq))])
            try connection.prepare("INSERT INTO deliveries (destination, seq, run_id, status, next_attempt_at) VALUES ('slack:web', ?, 1, 'pending', 0)")
                .run([.integer(Int64(seq))])
        }
        try connection.execute("DELETE FROM run_events WHERE seq = 3")   // pruned: 3 must not come back
        try all.migrate(connection)
        #expect(try connection.prepare("SELECT seq FROM deliveries ORDER BY seq").rows { $0.int(0) } == [1, 2])
        try connection.prepare("INSERT INTO run_events (run_id, service, event, phase, at) VALUES (NULL, 'web', 'target_state', NULL, 9)").run([])
        #expect(connection.lastInsertRowID == 4)
        #expect(try connection.prepare("PRAGMA foreign_keys").rows { $0.int(0) } == [1], "foreign keys are on again")
        #expect(throws: SQLiteError.self, "the widened CHECK still refuses an unknown kind") {
            try connection.prepare("INSERT INTO run_events (run_id, service, event, at) VALUES (1, 'web', 'nonsense', 0)").run([])
        }
    }

    /// 0008 rebuilds log_lines with its CHECKs written without IN lists: every line stays,
    /// no sequence number is handed out twice, and the same values are still refused.
    @Test func theLogRebuildKeepsLinesAndTheirNumbersAndTheSameRules() throws {
        let db = TempDatabase()
        let (connection, all) = try migrated(db, upTo: 7)
        try connection.execute("INSERT INTO runs (service, version, requested_by, status, created_at) VALUES ('web', 'v1', 'test', 'queued', 0)")
        for (n, (stream, phase)) in [("system", nil), ("stdout", "deploy"), ("stderr", "restore"), ("stdout", "drain")].enumerated() {
            try connection.prepare("INSERT INTO log_lines (run_id, at, stream, target_id, phase, text) VALUES (1, ?, ?, 'i-1', ?, ?)")
                .run([.integer(Int64(n)), .text(stream), phase.map(SQLValue.text) ?? .null, .text("line \(n)")])
        }
        try connection.execute("DELETE FROM log_lines WHERE seq = 4")   // the last one gone: 4 must not come back
        try all.migrate(connection)
        #expect(try connection.prepare("SELECT seq, stream, phase, text FROM log_lines ORDER BY seq").rows {
            "\($0.int(0)) \($0.text(1)) \($0.optionalText(2) ?? "-") \($0.text(3))"
        } == ["1 system - line 0", "2 stdout deploy line 1", "3 stderr restore line 2"])
        try connection.execute("INSERT INTO log_lines (run_id, at, stream, phase, text) VALUES (1, 9, 'stdout', 'verify', 'after')")
        #expect(connection.lastInsertRowID == 5)
        #expect(try connection.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'log_lines'").rows { $0.text(0) } == ["log_lines_run"])
        for bad in ["(1, 0, 'stdin', NULL, 'x')", "(1, 0, 'stdout', 'rollback', 'x')", "(1, 0, 'Stdout', NULL, 'x')", "(2, 0, 'stdout', NULL, 'x')"] {
            #expect(throws: SQLiteError.self, "\(bad) is refused") {
                try connection.execute("INSERT INTO log_lines (run_id, at, stream, phase, text) VALUES \(bad)")
            }
        }
        // The point of it: no temporary b-tree per insert any more.
        let plan = try connection.prepare("EXPLAIN INSERT INTO log_lines (run_id, at, stream, phase, text) VALUES (1, 0, 'stdout', NULL, 'x')").rows { $0.text(1) }
        #expect(!plan.contains("OpenEphemeral"))
    }

    @Test func aDatabaseNewerThanTheBinaryIsRefused() throws {
        let db = TempDatabase()
        let connection = try Connection(path: db.path)
        try Migrator(directory: migrationsDirectory).migrate(connection)
        try connection.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)")
        #expect {
            try Migrator(directory: migrationsDirectory).migrate(connection)
        } throws: { error in
            "\(error)".contains("schema version 99") && "\(error)".contains("knows versions up to 19")
        }
        #expect(throws: MigrationError.self) { _ = try Store(path: db.path, migrator: Migrator(directory: migrationsDirectory)) }
    }

    @Test func aFailingMigrationIsRolledBackWhole() throws {
        let db = TempDatabase()
        let migrator = try Migrator(migrations: [
            Migration(version: 1, name: "ok", sql: "CREATE TABLE a (x INTEGER);"),
            Migration(version: 2, name: "broken", sql: "CREATE TABLE b (y INTEGER); INSERT INTO nowhere VALUES (1);"),
        ])
        let connection = try Connection(path: db.path)
        #expect { try migrator.migrate(connection) } throws: { "\($0)".contains("2_broken failed and was rolled back") }
        #expect(try migrator.currentVersion(of: connection) == 1)
        let tables = try connection.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('a', 'b')").rows { $0.text(0) }
        #expect(tables == ["a"])
    }

    @Test func badFileNamesAndDuplicateVersionsAreErrors() throws {
        #expect(throws: MigrationError.self) {
            _ = try Migrator(migrations: [Migration(version: 1, name: "a", sql: ""), Migration(version: 1, name: "b", sql: "")])
        }
        #expect(throws: MigrationError.self) { _ = try Migrator(directory: "/nonexistent-dir") }
    }
}

@Suite struct ConstraintTests {
    let db = TempDatabase()

    func connection() throws -> Connection {
        let connection = try Connection(path: db.path)
        try Migrator(directory: migrationsDirectory).migrate(connection)
        return connection
    }

    func violates(_ connection: Connection, _ sql: String) -> Bool {
        do { try connection.execute(sql); return false } catch let error as SQLiteError { return error.isConstraintViolation } catch { return false }
    }

    @Test func statusesOutsideTheEnumsAreRefused() throws {
        let c = try connection()
        #expect(violates(c, "INSERT INTO runs (service, version, requested_by, status, created_at) VALUES ('web', 'v1', 't', 'paused', 0)"))
        try c.execute("INSERT INTO runs (service, version, requested_by, status, created_at) VALUES ('web', 'v1', 't', 'queued', 0)")
        #expect(violates(c, "INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at) VALUES (1, 'i', 80, 'reboot', 'running', 0)"))
        #expect(violates(c, "INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at) VALUES (1, 'i', 80, 'drain', 'sleeping', 0)"))
        #expect(violates(c, "INSERT INTO log_lines (run_id, at, stream, text) VALUES (1, 0, 'stdin', 'x')"))
    }

    @Test func atMostOneRunningRunPerService() throws {
        let c = try connection()
        try c.execute("INSERT INTO runs (service, version, requested_by, status, created_at, started_at) VALUES ('web', 'v1', 't', 'running', 0, 0)")
        #expect(violates(c, "INSERT INTO runs (service, version, requested_by, status, created_at, started_at) VALUES ('web', 'v2', 't', 'running', 0, 0)"))
        try c.execute("INSERT INTO runs (service, version, requested_by, status, created_at, started_at) VALUES ('api', 'v2', 't', 'running', 0, 0)")
    }

    @Test func finishedRunsHaveAnEndAndFailedOnesAReason() throws {
        let c = try connection()
        #expect(violates(c, "INSERT INTO runs (service, version, requested_by, status, created_at, started_at) VALUES ('web', 'v1', 't', 'succeeded', 0, 0)"))
        #expect(violates(c, "INSERT INTO runs (service, version, requested_by, status, created_at, started_at, finished_at) VALUES ('web', 'v1', 't', 'failed', 0, 0, 1)"))
        #expect(violates(c, "INSERT INTO runs (service, version, requested_by, status, created_at, finished_at) VALUES ('web', 'v1', 't', 'queued', 0, 1)"))
        #expect(violates(c, "INSERT INTO runs (service, version, requested_by, status, created_at) VALUES ('web', '', 't', 'queued', 0)"))
    }

    /// One step in hand per target of a run (a batch has one per target at once; migration 10).
    @Test func oneStepInHandPerTargetOfARun() throws {
        let c = try connection()
        try c.execute("INSERT INTO runs (service, version, requested_by, status, created_at, started_at) VALUES ('web', 'v1', 't', 'running', 0, 0)")
        try c.execute("INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at) VALUES (1, 'a', 80, 'drain', 'running', 0)")
        try c.execute("INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at) VALUES (1, 'b', 80, 'drain', 'running', 0)")
        #expect(violates(c, "INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at) VALUES (1, 'a', 80, 'deploy', 'running', 0)"))
    }
}

@Suite struct StoreQueueTests {
    let db = TempDatabase()
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func store(_ engine: Engine) throws -> Store { try makeStore(engine, db) }

    func created(_ result: Enqueued) throws -> Run {
        guard case .created(let run, _) = result else { throw SQLiteError(code: 0, message: "not created: \(result)", sql: nil) }
        return run
    }

    @Test(arguments: Engine.allCases) func claimsOldestFirstAndOneRunningRunPerService(_ engine: Engine) throws {
        let store = try store(engine)
        let a = try created(store.enqueue(service: "web", version: "v1", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0))
        let b = try created(store.enqueue(service: "api", version: "v1", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0))
        #expect(try store.claimNext(at: t0)?.id == a.id)
        #expect(try store.claimNext(at: t0)?.id == b.id)
        let c = try created(store.enqueue(service: "web", version: "v2", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0))
        #expect(try store.claimNext(at: t0) == nil, "web is busy")
        try store.finish(a.id, .succeed, error: nil, at: t0)
        let claimed = try store.claimNext(at: t0)
        #expect(claimed?.id == c.id)
        #expect(claimed?.status == .running)
        #expect(try store.run(a.id)?.status == .succeeded)
    }

    @Test(arguments: Engine.allCases) func aNewerDeploySupersedesTheQueuedOne(_ engine: Engine) throws {
        let store = try store(engine)
        let running = try created(store.enqueue(service: "web", version: "v1", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0))
        _ = try store.claimNext(at: t0)
        let queued = try created(store.enqueue(service: "web", version: "v2", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0))
        guard case .created(let newest, let superseded) = try store.enqueue(service: "web", version: "v3", reason: "hotfix", requestedBy: "t", idempotencyKey: nil, at: t0) else {
            Issue.record("not created"); return
        }
        #expect(superseded == [queued.id])
        #expect(try store.run(queued.id)?.status == .superseded)
        #expect(try store.run(queued.id)?.error == "superseded by run \(newest.id) (v3)", "it names its successor")
        #expect(try store.run(running.id)?.status == .running, "a running run is never superseded")
        #expect(try store.run(newest.id)?.reason == "hotfix")
        #expect(try store.logs(run: queued.id, after: 0, limit: 10).map(\.text) == ["superseded by run \(newest.id) (web v3) before it started"])
    }

    @Test(arguments: Engine.allCases) func idempotencyKeysReplayTheSameRunAndRefuseAnother(_ engine: Engine) throws {
        let store = try store(engine)
        let first = try created(store.enqueue(service: "web", version: "v1", reason: nil, requestedBy: "t", idempotencyKey: "k1", at: t0))
        guard case .replayed(let again) = try store.enqueue(service: "web", version: "v1", reason: nil, requestedBy: "t", idempotencyKey: "k1", at: t0) else {
            Issue.record("not replayed"); return
        }
        #expect(again.id == first.id)
        guard case .keyConflict(let other) = try store.enqueue(service: "web", version: "v2", reason: nil, requestedBy: "t", idempotencyKey: "k1", at: t0) else {
            Issue.record("no conflict"); return
        }
        #expect(other.id == first.id)
        #expect(try store.runs(RunFilter()).count == 1)
    }

    @Test(arguments: Engine.allCases) func stepsLogsAndPagingReadBack(_ engine: Engine) throws {
        let store = try store(engine)
        for n in 1...5 { _ = try store.enqueue(service: n % 2 == 0 ? "api" : "web", version: "v\(n)", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0) }
        let page1 = try store.runs(RunFilter(limit: 2))
        #expect(page1.map(\.id) == [5, 4])
        let page2 = try store.runs(RunFilter(limit: 2, before: page1.last!.id))
        #expect(page2.map(\.id) == [3, 2])
        #expect(try store.runs(RunFilter(service: "api")).map(\.id) == [4, 2])
        #expect(try store.runs(RunFilter(status: .superseded)).map(\.id) == [3, 2, 1], "each queued run superseded by the next of its service")

        let run = try #require(try store.claimNext(at: t0))
        let step = try store.beginStep(run: run.id, target: Target(id: "i-1", port: 8080), phase: .drain, at: t0)
        try store.log(run: run.id, stream: .system, target: "i-1", phase: .drain, text: "DeregisterTargets", at: t0)
        try store.log(run: run.id, stream: .stdout, target: "i-1", phase: .deploy, text: "line ü \"quoted\"", at: t0)
        try store.recordHookProcess(HookProcess(group: 777), step: step)
        try store.endStep(step, .succeed, error: nil, at: t0.addingTimeInterval(1.5))
        #expect(throws: InvalidTransition.self) { try store.endStep(step, .fail, error: "x", at: t0) }
        let read = try #require(try store.run(run.id))
        #expect(read.steps.count == 1)
        #expect(read.steps[0].status == .succeeded)
        #expect(read.steps[0].targetPort == 8080)
        #expect(read.steps[0].hookProcess == HookProcess(group: 777))
        #expect(read.steps[0].finishedAt == t0.addingTimeInterval(1.5))
        let lines = try store.logs(run: run.id, after: 0, limit: 100)
        #expect(lines.map(\.text) == ["DeregisterTargets", "line ü \"quoted\""])
        #expect(try store.logs(run: run.id, after: lines[0].seq, limit: 100).map(\.text) == ["line ü \"quoted\""])
    }

    @Test(arguments: Engine.allCases) func cancelEndsAQueuedRunAtOnceAndMarksARunningOne(_ engine: Engine) throws {
        let store = try store(engine)
        let a = try created(store.enqueue(service: "web", version: "v1", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0))
        let b = try created(store.enqueue(service: "api", version: "v1", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0))
        _ = try store.claimNext(at: t0)
        #expect(try store.requestCancel(a.id, at: t0)?.status == .running)
        #expect(try store.isCancelRequested(a.id))
        #expect(try store.requestCancel(b.id, at: t0)?.status == .cancelled)
        #expect(try store.requestCancel(999, at: t0) == nil)
    }

    @Test(arguments: Engine.allCases) func everythingSurvivesReopening(_ engine: Engine) throws {
        do {
            let store = try store(engine)
            _ = try store.enqueue(service: "web", version: "v1", reason: "first", requestedBy: "t", idempotencyKey: nil, at: t0)
            try store.saveSimulatedTarget(service: "web", SimulatedTarget(target: Target(id: "web-1", port: 80), registered: false, changedAt: t0))
        }
        let reopened = try store(engine)
        #expect(try reopened.run(1)?.reason == "first")
        #expect(try reopened.simulatedTargets(service: "web") == [SimulatedTarget(target: Target(id: "web-1", port: 80), registered: false, changedAt: t0)])
    }
}

@Suite struct ConnectionTests {
    static let pick = Query("SELECT ?")

    /// A `Query` is prepared once per connection and found by its slot: each connection gets
    /// its own statement, reused (reset, bindings cleared) call after call.
    @Test func queriesArePreparedOncePerConnectionAndReused() throws {
        let db = TempDatabase()
        let first = try Connection(path: db.path)
        let second = try Connection(path: db.path)
        let a = try first.prepare(ConnectionTests.pick)
        #expect(try a.rows([.integer(1)]) { $0.int(0) } == [1])
        let again = try first.prepare(ConnectionTests.pick)
        #expect(again === a)
        #expect(try again.rows([.text("x")]) { $0.text(0) } == ["x"])
        let other = try second.prepare(ConnectionTests.pick)
        #expect(other !== a)
        #expect(try other.rows([.null]) { $0.isNull(0) } == [true])
        let later = Query("SELECT 2")
        #expect(later.slot > ConnectionTests.pick.slot)
        #expect(try first.prepare(later).rows { $0.int(0) } == [2])
    }

    /// Enum columns are read byte for byte against the raw values: an exact match or nil
    /// (NULL, a prefix, a different case, text past a valid value).
    @Test func enumColumnsMatchRawValuesExactly() throws {
        let db = TempDatabase()
        let connection = try Connection(path: db.path)
        let texts: [SQLValue] = [.text("drain"), .text("restore"), .null, .text("drai"), .text("Drain"), .text("drained"), .text("")]
        let read: [Phase?] = try texts.map { value in
            try connection.prepare("SELECT ?").rows([value]) { $0.value(0, as: Phase.self) }.first!
        }
        #expect(read == [.drain, .restore, nil, nil, nil, nil, nil])
    }
}
