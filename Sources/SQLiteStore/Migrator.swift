#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

import Rollout

/// Applies SQLite's migrations in order, one transaction each, recorded in `schema_migrations`.
public struct Migrator: Sendable {
    public let files: MigrationFiles
    public var migrations: [Migration] { files.migrations }

    public init(migrations: [Migration]) throws {
        files = try MigrationFiles(migrations: migrations)
    }

    /// Reads every `NNNN_name.sql` in a directory.
    public init(directory: String) throws {
        files = try MigrationFiles(directory: directory)
    }

    public var latestVersion: Int { files.latestVersion }

    public func currentVersion(of connection: Connection) throws -> Int {
        try ensureTable(connection)
        return Int(try connection.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").rows { $0.int(0) }.first ?? 0)
    }

    /// Applies what is missing; returns the versions applied now.
    @discardableResult
    public func migrate(_ connection: Connection, now: Date = Date()) throws -> [Int] {
        let current = try currentVersion(of: connection)
        // A migration may rebuild a table others refer to: foreign keys are off while it runs
        // (the pragma is ignored inside a transaction) and checked before it commits.
        try connection.execute("PRAGMA foreign_keys = OFF")
        defer { try? connection.execute("PRAGMA foreign_keys = ON") }
        return try files.apply(after: current) { migration in
            try connection.transaction {
                try connection.execute(migration.sql)
                let broken = try connection.prepare("PRAGMA foreign_key_check").rows([]) { $0.text(0) }
                if let table = broken.first {
                    throw SQLiteError(code: 787, message: "migration \(migration.version) leaves rows in \(table) whose parent is gone", sql: nil)
                }
                try connection.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
                    .run([.integer(Int64(migration.version)), .text(migration.name), .integer(now.milliseconds)])
            }
        }
    }

    private func ensureTable(_ connection: Connection) throws {
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT    NOT NULL,
                applied_at INTEGER NOT NULL
            )
            """)
    }
}
