import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Applies PostgreSQL's migrations (`migrations/postgres/`) in order, one transaction each,
/// recorded in `schema_migrations`, like SQLite's. Several replicas starting at once take
/// turns: the whole run holds a session advisory lock, so the second finds the schema done.
public struct PostgresMigrator: Sendable {
    public let files: MigrationFiles
    public var migrations: [Migration] { files.migrations }
    public var latestVersion: Int { files.latestVersion }

    /// The advisory lock key every rollgate takes while migrating (a constant: one schema).
    static let lockKey: Int64 = 0x726f_6c6c_6761_7465   // "rollgate"

    public init(migrations: [Migration]) throws {
        files = try MigrationFiles(migrations: migrations)
    }

    public init(directory: String) throws {
        files = try MigrationFiles(directory: directory)
    }

    public func currentVersion(of db: PGConnection) throws -> Int {
        try ensureTable(db)
        return Int(try db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").rows.first?.int(0) ?? 0)
    }

    /// Applies what is missing; returns the versions applied now.
    @discardableResult
    public func migrate(_ db: PGConnection, now: Date = Date()) throws -> [Int] {
        try db.execute("SELECT pg_advisory_lock($1)", [.integer(PostgresMigrator.lockKey)])
        defer { _ = try? db.execute("SELECT pg_advisory_unlock($1)", [.integer(PostgresMigrator.lockKey)]) }
        return try files.apply(after: try currentVersion(of: db)) { migration in
            _ = try db.transaction { db in
                try db.executeScript(migration.sql)
                return try db.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                                      [.integer(Int64(migration.version)), .text(migration.name), .integer(now.milliseconds)])
            }
        }
    }

    private func ensureTable(_ db: PGConnection) throws {
        try db.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    BIGINT PRIMARY KEY,
                name       TEXT   NOT NULL,
                applied_at BIGINT NOT NULL
            )
            """)
    }
}
