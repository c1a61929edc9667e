import Configuration
import HTTPAPI
import Integrations
import WireFormat
import PostgresStore
import Rollout
import SQLiteStore
import SQLStore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `rollgate copy-database`: a SQLite history into an empty PostgreSQL database, from one
/// machine to several. Every table, every row with its ids and sequence numbers (log cursors,
/// Last-Event-ID and the notifiers' cursors go on where they were), read from one consistent
/// snapshot of the SQLite file and written in one PostgreSQL transaction, each table's count
/// checked before it commits: the copy is whole or absent.
public struct DatabaseCopy {
    /// In an order that keeps every foreign key satisfied. `server_holder` (SQLite's
    /// one-process hold) and `replicas` (who is alive now) are not copied: every replica
    /// serves on PostgreSQL and says so itself.
    static let tables = ["runs", "steps", "log_lines", "simulated_targets", "run_targets", "left_out_targets",
                         "run_interruptions", "service_locks", "run_events", "deliveries", "delivery_cursors",
                         "seen_requests", "changed_health_checks", "maintenance", "target_versions"]
    /// Ids and sequence numbers that go on after the copy's highest (never reused).
    static let counters: [(table: String, column: String)] = [("runs", "id"), ("steps", "id"), ("log_lines", "seq"), ("run_events", "seq")]

    public struct Copied: Sendable, Equatable {
        public let table: String
        public let rows: Int
    }

    public struct Refusal: Error, CustomStringConvertible {
        public let description: String
    }

    public let sqlitePath: String
    public let postgresURI: String
    public let sqliteMigrations: Migrator
    public let postgresMigrations: PostgresMigrator

    public init(from sqlitePath: String, to postgresURI: String, sqliteMigrations: Migrator, postgresMigrations: PostgresMigrator) {
        self.sqlitePath = sqlitePath
        self.postgresURI = postgresURI
        self.sqliteMigrations = sqliteMigrations
        self.postgresMigrations = postgresMigrations
    }

    /// Copies; `progress` hears a line per table (and every 100,000 rows of a big one).
    public func run(now: Date = Date(), progress: (String) -> Void = { _ in }) throws -> [Copied] {
        guard FileManager.default.fileExists(atPath: sqlitePath) else {
            throw Refusal(description: "\(sqlitePath) does not exist (the SQLite database to copy, e.g. --from ./rollgate.db)")
        }
        let source = try Connection(path: sqlitePath, readOnly: true)
        let target: PGConnection
        do {
            target = try PGConnection(uri: postgresURI)
        } catch let error as PostgresError {
            throw Refusal(description: "cannot reach PostgreSQL at \(PostgresURI.redacted(postgresURI)): \(error.message)")
        }
        // One snapshot of the file for every table (a deferred read transaction: in WAL mode a
        // writer may go on, the copy sees none of it).
        try source.execute("BEGIN")
        defer { try? source.execute("COMMIT") }
        try checkSource(source, now: now)
        try postgresMigrations.migrate(target, now: now)
        try checkEmpty(target)
        return try target.transaction { target in
            var copied: [Copied] = []
            for table in DatabaseCopy.tables {
                let rows = try copy(table, from: source, to: target, progress: progress)
                let there = Int(try target.execute("SELECT count(*) FROM \(table)").rows.first?.int(0) ?? -1)
                guard there == rows else {
                    throw Refusal(description: "\(table): \(rows) rows read from SQLite but \(there) in PostgreSQL; nothing was copied")
                }
                copied.append(Copied(table: table, rows: rows))
                progress("\(table): \(rows) \(rows == 1 ? "row" : "rows")")
            }
            try advanceCounters(source, target)
            return copied
        }
    }

    /// The SQLite file is at this rollgate's schema and no server is writing it.
    private func checkSource(_ source: Connection, now: Date) throws {
        let version = Int(try source.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").rows { $0.int(0) }.first ?? 0)
        if version < sqliteMigrations.latestVersion {
            throw Refusal(description: "\(sqlitePath) is at schema version \(version), this rollgate's is \(sqliteMigrations.latestVersion): run `rollgate migrate --database \(sqlitePath)` first")
        }
        if version > sqliteMigrations.latestVersion {
            throw Refusal(description: "\(sqlitePath) is at schema version \(version), newer than this rollgate knows (\(sqliteMigrations.latestVersion)): copy it with the rollgate that wrote it")
        }
        let holder = try source.prepare("SELECT owner, expires_at FROM server_holder WHERE expires_at > ?")
            .rows([.integer(now.milliseconds)]) { $0.text(0) }.first
        if let holder {
            throw Refusal(description: "a rollgate server (\(holder)) holds \(sqlitePath): stop it first, so the copy misses nothing it would still write")
        }
    }

    /// The target has the schema and not one row: the copy never merges two histories.
    private func checkEmpty(_ target: PGConnection) throws {
        for table in DatabaseCopy.tables + ["server_holder"] {
            let count = try target.execute("SELECT count(*) FROM \(table)").rows.first?.int(0) ?? 0
            if count > 0 {
                throw Refusal(description: "the PostgreSQL database is not empty (\(table) has \(count) rows): copy-database fills a new, empty database only")
            }
        }
    }

    /// Every row of a table, in rowid order, in batches of one multi-row INSERT.
    private func copy(_ table: String, from source: Connection, to target: PGConnection, progress: (String) -> Void) throws -> Int {
        let columns = try source.prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid").rows([.text(table)]) { $0.text(0) }
        let ordered = try source.prepare("SELECT 1 FROM sqlite_master WHERE name = ? AND sql LIKE '%WITHOUT ROWID%'")
            .rows([.text(table)]) { _ in true }.isEmpty
        let list = columns.joined(separator: ", ")
        let perBatch = max(1, min(500, 60_000 / max(1, columns.count)))
        var batch: [PGValue] = []
        var rows = 0
        func flush() throws {
            guard !batch.isEmpty else { return }
            let count = batch.count / columns.count
            var placeholders: [String] = []
            placeholders.reserveCapacity(count)
            for row in 0..<count {
                let first = row * columns.count
                placeholders.append("(" + (1...columns.count).map { "$\(first + $0)" }.joined(separator: ", ") + ")")
            }
            try target.execute("INSERT INTO \(table) (\(list)) VALUES " + placeholders.joined(separator: ", "), batch)
            batch.removeAll(keepingCapacity: true)
        }
        try source.statement("SELECT \(list) FROM \(table)" + (ordered ? " ORDER BY rowid" : "")).forEachRow { row in
            for column in 0..<columns.count {
                switch row.value(Int32(column)) {
                case .null: batch.append(.null)
                case .integer(let value): batch.append(.integer(value))
                case .text(let value): batch.append(.text(value))
                }
            }
            rows += 1
            if rows % perBatch == 0 { try flush() }
            if rows % 100_000 == 0 { progress("\(table): \(rows) rows so far") }
        }
        try flush()
        let expected = Int(try source.prepare("SELECT count(*) FROM \(table)").rows { $0.int(0) }.first ?? -1)
        guard expected == rows else { throw Refusal(description: "\(table): read \(rows) rows of \(expected)") }
        return rows
    }

    /// Each id and seq goes on past the highest the SQLite file ever handed out (its
    /// AUTOINCREMENT high-water mark, which may be above the highest row left).
    private func advanceCounters(_ source: Connection, _ target: PGConnection) throws {
        for (table, column) in DatabaseCopy.counters {
            let highest = try source.prepare("SELECT MAX(COALESCE((SELECT MAX(\(column)) FROM \(table)), 0), COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0))")
                .rows([.text(table)]) { $0.int(0) }.first ?? 0
            let sequence = column == "seq" ? "\(table)_seq" : try target.execute("SELECT pg_get_serial_sequence($1, $2)", [.text(table), .text(column)]).rows[0].text(0)
            try target.execute("SELECT setval($1::regclass, $2, $3)", [.text(sequence), .integer(max(1, highest)), .bool(highest > 0)])
        }
    }
}
