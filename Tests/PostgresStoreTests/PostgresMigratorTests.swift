import Foundation
import Testing
import PostgresStore
import PostgresTesting
import Rollout
import SQLiteStore
@testable import SQLStore

let repositoryRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()
let postgresMigrations = repositoryRoot + "/migrations/postgres"

/// PostgreSQL's schema: applied once even by replicas starting together, refused when newer
/// than the binary, the same tables and columns as SQLite's, and the same rules held by the
/// schema itself (one running run per service, the CHECKs, the foreign keys), plus sequence
/// numbers that commit in order.
@Suite(.serialized) struct PostgresMigratorTests {
    func migrated() throws -> PGConnection {
        let db = try PGConnection(uri: try postgres().createDatabase())
        try PostgresMigrator(directory: postgresMigrations).migrate(db)
        return db
    }

    @Test func appliesOnceAndRefusesANewerDatabase() throws {
        let db = try PGConnection(uri: try postgres().createDatabase())
        let migrator = try PostgresMigrator(directory: postgresMigrations)
        #expect(try migrator.migrate(db) == migrator.migrations.map(\.version))
        #expect(try migrator.migrate(db) == [])
        #expect(try migrator.currentVersion(of: db) == migrator.latestVersion)
        try db.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)")
        #expect { try migrator.migrate(db) } throws: { "\($0)".contains("schema version 99") }
        // A broken migration is rolled back whole, and says which.
        let broken = try PostgresMigrator(migrations: [Migration(version: 1, name: "ok", sql: "CREATE TABLE a (x BIGINT);"),
                                                       Migration(version: 2, name: "broken", sql: "CREATE TABLE b (y BIGINT); INSERT INTO nowhere VALUES (1);")])
        let fresh = try PGConnection(uri: try postgres().createDatabase())
        #expect { try broken.migrate(fresh) } throws: { "\($0)".contains("2_broken failed and was rolled back") }
        #expect(try broken.currentVersion(of: fresh) == 1)
        #expect(try fresh.execute("SELECT to_regclass('b') IS NULL").rows.first?.bool(0) == true)
    }

    /// Three replicas started at once: one applies the schema, the others find it done.
    @Test func replicasStartingTogetherMigrateOnce() async throws {
        let uri = try postgres().createDatabase()
        let migrator = try PostgresMigrator(directory: postgresMigrations)
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<3 {
                group.addTask { try await Task.detached { try migrator.migrate(try PGConnection(uri: uri)) }.value }
            }
            return try await group.reduce(into: [[Int]]()) { $0.append($1) }
        }
        #expect(applied.filter { !$0.isEmpty } == [migrator.migrations.map(\.version)])
        #expect(applied.filter(\.isEmpty).count == 2)
    }

    /// The same tables and columns as SQLite's schema after all of its migrations: one
    /// contract can only hold on both engines if both keep the same records.
    @Test func theSchemaHasSQLitesTablesAndColumns() throws {
        let db = try migrated()
        let sqlite = TempSQLite()
        defer { sqlite.remove() }
        let connection = try Connection(path: sqlite.path)
        try Migrator(directory: repositoryRoot + "/migrations").migrate(connection)
        let tables = try connection.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .rows { $0.text(0) }
        var expected: [String: Set<String>] = [:]
        for table in tables {
            expected[table] = Set(try connection.prepare("SELECT name FROM pragma_table_info(?)").rows([.text(table)]) { $0.text(0) })
        }
        var actual: [String: Set<String>] = [:]
        for row in try db.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'").rows {
            actual[row.text(0), default: []].insert(row.text(1))
        }
        // SQLite orders equal times by rowid; PostgreSQL's run_interruptions has an id for it.
        actual["run_interruptions"]?.remove("id")
        #expect(actual == expected)
    }

    @Test func theSchemaHoldsTheQueuesRules() throws {
        let db = try migrated()
        func run(_ service: String, _ status: String, error: String? = nil) throws {
            try db.execute("""
                INSERT INTO runs (service, version, requested_by, status, created_at, started_at, finished_at, error)
                VALUES ($1, 'v1', 'test', $2, 0, CASE WHEN $2 = 'queued' THEN NULL ELSE 1 END,
                        CASE WHEN $2 IN ('queued', 'running') THEN NULL ELSE 2 END, $3)
                """, [.text(service), .text(status), error.map(PGValue.text) ?? .null])
        }
        try run("web", "running")
        try run("api", "running")
        #expect { try run("web", "running") } throws: { ($0 as? PostgresError)?.isUniqueViolation == true }
        #expect { try run("web", "failed") } throws: { ($0 as? PostgresError)?.sqlState == "23514" }
        #expect { try run("web", "bogus") } throws: { ($0 as? PostgresError)?.sqlState == "23514" }
        #expect {
            try db.execute("INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at) VALUES (999, 'i-1', 80, 'drain', 'running', 0)")
        } throws: { ($0 as? PostgresError)?.sqlState == "23503" }
        try db.execute("INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at) VALUES (1, 'i-1', 80, 'drain', 'running', 0)")
        try db.execute("INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at) VALUES (1, 'i-2', 80, 'drain', 'running', 0)")
        #expect {
            try db.execute("INSERT INTO steps (run_id, target_id, target_port, phase, status, started_at) VALUES (1, 'i-1', 80, 'deploy', 'running', 0)")
        } throws: { ($0 as? PostgresError)?.isUniqueViolation == true }
        let now = try db.execute("SELECT rollgate_now_ms()").rows.first?.int(0) ?? 0
        #expect(abs(now - Date().milliseconds) < 60_000, "the database's clock in milliseconds")
    }

    /// A log line's seq is taken under a lock its transaction holds until it ends: a second
    /// writer waits, so a later seq never commits before an earlier one (a stream reading
    /// after seq N can never miss a line that commits later with a smaller seq).
    @Test func sequenceNumbersCommitInOrder() async throws {
        let db = try migrated()
        try db.execute("INSERT INTO runs (service, version, requested_by, status, created_at) VALUES ('web', 'v1', 't', 'queued', 0)")
        let uri = try db.execute("SELECT current_database()").rows.first.map { try postgres().uri(database: $0.text(0)) }!
        let first = try PGConnection(uri: uri), second = try PGConnection(uri: uri)
        try first.execute("BEGIN")
        let early = try first.execute("INSERT INTO log_lines (run_id, at, stream, text) VALUES (1, 0, 'system', 'a') RETURNING seq").rows[0].int(0)
        let later = Task.detached { () throws -> Int64 in
            try second.execute("INSERT INTO log_lines (run_id, at, stream, text) VALUES (1, 0, 'system', 'b') RETURNING seq").rows[0].int(0)
        }
        try await Task.sleep(for: .milliseconds(300))
        let visible = try db.execute("SELECT count(*) FROM log_lines").rows[0].int(0)
        #expect(visible == 0, "neither line has committed")
        try first.execute("COMMIT")
        let seq = try await later.value
        #expect(seq > early)
        #expect(try db.execute("SELECT seq FROM log_lines ORDER BY seq").rows.map { $0.int(0) } == [early, seq])
        // An explicit seq (a copied history) is kept as given.
        try db.execute("INSERT INTO log_lines (seq, run_id, at, stream, text) VALUES (1000, 1, 0, 'system', 'copied')")
        #expect(try db.execute("SELECT count(*) FROM log_lines WHERE seq = 1000").rows[0].int(0) == 1)
    }
}

/// A SQLite file in a temporary directory.
struct TempSQLite {
    let directory = NSTemporaryDirectory() + "rollgate-sqlite-\(UUID().uuidString.prefix(8))"
    var path: String { directory + "/schema.db" }
    init() { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}
