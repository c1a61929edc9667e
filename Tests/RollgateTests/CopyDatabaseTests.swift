@testable import Configuration
@testable import HTTPAPI
@testable import Hooks
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
import HTTPTesting
import PostgresStore
import PostgresTesting
@testable import RollgateServer
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore

/// `rollgate copy-database`: a SQLite history, made through the store's own writes, lands in
/// an empty PostgreSQL database row for row (ids and sequence numbers kept, counters moved
/// past them), or not at all.
@Suite(.serialized) struct CopyDatabaseTests {
    let directory = TempDirectory()
    static let server: Result<PostgresServer, Error> = Result { try PostgresServer() }

    /// A history with a row in nearly every table: runs of every ending, steps, log lines,
    /// events and their deliveries, a left-out target, a lock, an interruption, a replay key,
    /// a changed health check.
    func history() throws -> String {
        let path = directory.path + "/history.db"
        let store = try Store(path: path, migrator: Migrator(directory: migrationsDirectory))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let owner = LeaseOwner.test
        _ = try store.enqueue(service: "web", version: "v1", reason: "first", requestedBy: "ci", idempotencyKey: "key-1", at: t0)
        let run = try #require(try store.claimNext(owner: owner, lease: .seconds(60), at: t0))
        let lease = try #require(run.lease)
        let target = Target(id: "i-1", port: 80), other = Target(id: "i-2", port: 8080)
        _ = try store.freezePlan(run: run.id, targets: [target, other])
        try store.markOut(run: run.id, service: "web", target: target, phase: .drain, reason: "run 1 took it out", lease: lease, at: t0)
        let step = try store.beginStep(run: run.id, target: target, phase: .drain, at: t0)
        try store.log(run: run.id, stream: .system, target: "i-1", phase: .drain, text: "DeregisterTargets i-1:80 — ünïcode, 'quotes'", at: t0)
        try store.log(run: run.id, stream: .stdout, target: "i-1", phase: .deploy, text: "line\twith tab", at: t0)
        try store.noteQuiet(step, quiet: .seconds(3))
        try store.endStep(step, .succeed, error: nil, at: t0.addingTimeInterval(5))
        let failed = try store.beginStep(run: run.id, target: target, phase: .deploy, at: t0.addingTimeInterval(6))
        try store.endStep(failed, .fail, error: "deploy hook failed", at: t0.addingTimeInterval(7))
        try store.noteLeftOut(service: "web", target: target, run: run.id, phase: .deploy, reason: "deploy hook failed", at: t0)
        try store.recordInterruption(run: run.id, note: "resumed after a restart", at: t0)
        try store.recordInterruption(run: run.id, note: "and again", at: t0)
        try store.finish(run.id, .fail, error: "deploy hook failed on i-1", code: .hookFailed, lease: lease, at: t0.addingTimeInterval(8))
        _ = try store.enqueue(service: "api", version: "v7", reason: nil, requestedBy: "slack", idempotencyKey: nil, at: t0)
        guard case .created(let queued, _) = try store.enqueue(service: "web", version: "v2", reason: nil, requestedBy: "ci", idempotencyKey: nil, at: t0) else {
            throw TestFailure("not queued")
        }
        _ = try store.requestCancel(queued.id, at: t0)
        _ = try store.lock(service: "web", reason: "incident 42", by: "alice", expiresAt: nil, at: t0)
        try store.recordTargetState(service: "web", target: other, run: nil, state: "healthy", at: t0)
        let events = try store.events(after: 0)
        try store.queueDeliveries(to: "slack", events, upTo: events.last?.seq ?? 0, at: t0)
        try store.delivered(to: "slack", seq: events[0].seq, at: t0)
        #expect(try store.firstSight(of: "slack:replay-key", until: t0.addingTimeInterval(300), at: t0))
        _ = try store.noteOriginal(service: "web", targetGroup: "arn:tg/web", run: run.id,
                                   settings: HealthCheckSettings(interval: .seconds(30), timeout: .seconds(5), healthyThreshold: 5), at: t0)
        try store.checkpoint()
        return path
    }

    /// Every row of a table as text, in a stable order: the same on both engines or not.
    func rows(sqlite: Connection, _ table: String) throws -> [[String?]] {
        let columns = try sqlite.prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid").rows([.text(table)]) { $0.text(0) }
        let list = columns.joined(separator: ", ")
        return try sqlite.prepare("SELECT \(list) FROM \(table) ORDER BY \(list)").rows { row in
            (0..<columns.count).map { row.optionalText(Int32($0)) }
        }.sorted { $0.description < $1.description }
    }

    func rows(postgres: PGConnection, _ table: String, like sqlite: Connection) throws -> [[String?]] {
        let columns = try sqlite.prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid").rows([.text(table)]) { $0.text(0) }
        let list = columns.joined(separator: ", ")
        return try postgres.execute("SELECT \(list) FROM \(table)").rows.map { row in
            (0..<columns.count).map { row.optionalText($0) }
        }.sorted { $0.description < $1.description }
    }

    func copy(_ path: String, to uri: String) throws -> [DatabaseCopy.Copied] {
        try DatabaseCopy(from: path, to: uri, sqliteMigrations: Migrator(directory: migrationsDirectory),
                         postgresMigrations: PostgresMigrator(directory: migrationsDirectory + "/postgres")).run()
    }

    @Test func everyRowArrivesWithItsIdsAndTheCountersGoOnPastThem() throws {
        let path = try history()
        let server = try Self.server.get()
        let uri = try server.createDatabase()
        let copied = try copy(path, to: uri)
        #expect(copied.map(\.table) == DatabaseCopy.tables)
        let sqlite = try Connection(path: path, readOnly: true)
        let postgres = try PGConnection(uri: uri)
        var nonEmpty = 0
        for table in DatabaseCopy.tables {
            let expected = try rows(sqlite: sqlite, table)
            #expect(try rows(postgres: postgres, table, like: sqlite) == expected, "\(table)")
            #expect(copied.first { $0.table == table }?.rows == expected.count)
            if !expected.isEmpty { nonEmpty += 1 }
        }
        #expect(nonEmpty >= 12, "the history fills nearly every table (\(nonEmpty) of \(DatabaseCopy.tables.count))")
        // New rows go on after the copied ones: no id or seq is handed out twice.
        let runs = try sqlite.prepare("SELECT MAX(id) FROM runs").rows { $0.int(0) }[0]
        let next = try postgres.execute("INSERT INTO runs (service, version, requested_by, status, created_at) VALUES ('web', 'v3', 'ci', 'queued', 0) RETURNING id")
        #expect(next.rows[0].int(0) == runs + 1)
        let seq = try sqlite.prepare("SELECT MAX(seq) FROM log_lines").rows { $0.int(0) }[0]
        let line = try postgres.execute("INSERT INTO log_lines (run_id, at, stream, text) VALUES (1, 0, 'system', 'x') RETURNING seq")
        #expect(line.rows[0].int(0) == seq + 1)
        let event = try sqlite.prepare("SELECT MAX(seq) FROM run_events").rows { $0.int(0) }[0]
        let nextEvent = try postgres.execute("INSERT INTO run_events (run_id, service, event, at) VALUES (1, 'web', 'queued', 0) RETURNING seq")
        #expect(nextEvent.rows[0].int(0) == event + 1)
    }

    /// Never merges two histories, never copies a file a server still writes, never a file
    /// of another schema; each refusal says what to do, and leaves the target as it was.
    @Test func refusesWhatWouldLoseOrMixHistory() throws {
        let path = try history()
        let server = try Self.server.get()
        let uri = try server.createDatabase()
        _ = try copy(path, to: uri)
        #expect { try copy(path, to: uri) } throws: { "\($0)".contains("not empty (runs has 3 rows)") }

        let held = directory.path + "/held.db"
        let store = try Store(path: held, migrator: Migrator(directory: migrationsDirectory))
        _ = try store.claimServer(owner: LeaseOwner(host: "box", pid: 4242, start: 1), for: .seconds(60)) { _ in false }
        try store.checkpoint()
        let empty = try server.createDatabase()
        #expect { try copy(held, to: empty) } throws: { "\($0)".contains("holds \(held): stop it first") }
        #expect(try PGConnection(uri: empty).execute("SELECT count(*) FROM pg_tables WHERE tablename = 'runs'").rows[0].int(0) == 0,
                "refused before the target was touched")

        let old = directory.path + "/old.db"
        let connection = try Connection(path: old)
        try Migrator(migrations: try Migrator(directory: migrationsDirectory).migrations.filter { $0.version <= 5 }).migrate(connection)
        #expect { try copy(old, to: empty) } throws: { "\($0)".contains("run `rollgate migrate --database \(old)` first") }
        #expect { try copy(directory.path + "/missing.db", to: empty) } throws: { "\($0)".contains("does not exist") }
        #expect { try copy(path, to: "postgresql://rollgate:secret@127.0.0.1:1/none?connect_timeout=2") } throws: { error in
            "\(error)".contains("cannot reach PostgreSQL at postgresql://rollgate:***@127.0.0.1:1/none") && !"\(error)".contains("secret")
        }
    }

    /// The commands an operator types: `migrate` on a PostgreSQL URI, then `copy-database`.
    @Test func theCommandsMigrateAndCopy() async throws {
        let path = try history()
        let server = try Self.server.get()
        let uri = try server.createDatabase()
        let migrated = try await RollgateProcess.run(["migrate", "--database", uri])
        let latest = try PostgresMigrator(directory: migrationsDirectory + "/postgres").latestVersion
        #expect(migrated.0 == 0 && migrated.1.contains("applied \((1...latest).map(String.init).joined(separator: ", ")); now at schema version \(latest)"),
                "\(migrated.1)")
        let copied = try await RollgateProcess.run(["copy-database", "--from", path, "--to", uri])
        #expect(copied.0 == 0, "\(copied.1)")
        #expect(copied.1.contains("log_lines: 3 rows") && copied.1.contains("service_locks: 1 row\n") && !copied.1.contains("NOTICE") && copied.1.contains("copied 3 run(s) and their history"), "\(copied.1)")
        // The same run, as a replica on the copy and a server on the file show it.
        var pages: [String] = []
        for database in [path, uri] {
            let config = directory.write("serve-\(pages.count).yaml", """
                listen: 127.0.0.1:0
                public_read: true
                database: \(database)
                api_tokens: [{name: ci, token: copy-test-token-0123456789}]
                services: [{name: web, simulated: {targets: 2}, hooks: {deploy: 'true'}}]
                """)
            let server = try RollgateProcess(["serve", "--config", config])
            defer { server.kill(SIGTERM) }
            let client = HTTPClient(port: try await server.port())
            let run = try await client.request("GET", "/api/v1/runs/1")
            let page = try await client.request("GET", "/runs/1", headers: [("Accept", "text/plain")])
            let logs = try await client.request("GET", "/api/v1/runs/1/logs")
            #expect(run.status == 200 && page.status == 200 && logs.status == 200)
            pages.append([run, page, logs].map { String(decoding: $0.body, as: UTF8.self) }.joined(separator: "\n---\n"))
        }
        #expect(pages[0] == pages[1], "the run reads the same from the copy: \(pages)")
        #expect(pages[1].contains("\"error_code\":\"hook_failed\"") && pages[1].contains("ünïcode, 'quotes'"), "\(pages[1])")
        #expect(pages[1].contains("out of service: i-1 out for 0 ms so far"), "a start ahead of this clock (the history's is in 2027) is never shown as a negative time")
        let again = try await RollgateProcess.run(["copy-database", "--from", path, "--to", uri])
        #expect(again.0 == 1 && again.1.contains("is not empty") && again.1.contains("nothing was copied"), "\(again.1)")
        let wrong = try await RollgateProcess.run(["copy-database", "--from", path, "--to", "./other.db"])
        #expect(wrong.0 != 0 && wrong.1.contains("--to must be a PostgreSQL URI"), "\(wrong.1)")
        // libpq is loaded only to open a PostgreSQL database: a host without it is told so.
        let noLibPQ = try await RollgateProcess.run(["migrate", "--database", uri], environment: ["ROLLGATE_LIBPQ": "/nonexistent/libpq.so.5"])
        #expect(noLibPQ.0 == 1 && noLibPQ.1.contains("cannot load /nonexistent/libpq.so.5 (install libpq5"), "\(noLibPQ.1)")

    }
}
