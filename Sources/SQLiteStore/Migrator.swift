#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One numbered SQL file from `migrations/`, e.g. `0002_simulated_targets.sql`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

public enum MigrationError: Error, CustomStringConvertible {
    case noMigrations(directory: String)
    case badFileName(String)
    case duplicateVersion(Int)
    case databaseNewerThanBinary(database: Int, known: Int)
    case failed(Migration, SQLiteError)

    public var description: String {
        switch self {
        case .noMigrations(let directory):
            return "no migrations found in \(directory) (expected files like 0001_name.sql; pass --migrations DIR or set ROLLGATE_MIGRATIONS)"
        case .badFileName(let name):
            return "migration file \(name) must be named NNNN_description.sql"
        case .duplicateVersion(let version):
            return "two migration files have version \(version)"
        case .databaseNewerThanBinary(let database, let known):
            return "the database is at schema version \(database), but this rollgate knows versions up to \(known): it was written by a newer rollgate; run that one, or restore a backup"
        case .failed(let migration, let error):
            return "migration \(migration.version)_\(migration.name) failed and was rolled back: \(error)"
        }
    }
}

/// Applies migrations in order, one transaction each, recorded in `schema_migrations`.
/// A shipped migration is never edited: a change is a new file.
public struct Migrator: Sendable {
    public let migrations: [Migration]

    public init(migrations: [Migration]) throws {
        let sorted = migrations.sorted { $0.version < $1.version }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.version == b.version {
            throw MigrationError.duplicateVersion(a.version)
        }
        self.migrations = sorted
    }

    /// Reads every `NNNN_name.sql` in a directory.
    public init(directory: String) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var migrations: [Migration] = []
        for name in names where name.hasSuffix(".sql") {
            let stem = name.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw MigrationError.badFileName(name)
            }
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else {
                throw MigrationError.badFileName(name)
            }
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]),
                                        sql: String(decoding: data, as: UTF8.self)))
        }
        guard !migrations.isEmpty else { throw MigrationError.noMigrations(directory: directory) }
        try self.init(migrations: migrations)
    }

    public var latestVersion: Int { migrations.last?.version ?? 0 }

    public func currentVersion(of connection: Connection) throws -> Int {
        try ensureTable(connection)
        return Int(try connection.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").rows { $0.int(0) }.first ?? 0)
    }

    /// Applies what is missing; returns the versions applied now.
    @discardableResult
    public func migrate(_ connection: Connection, now: Date = Date()) throws -> [Int] {
        let current = try currentVersion(of: connection)
        if current > latestVersion {
            throw MigrationError.databaseNewerThanBinary(database: current, known: latestVersion)
        }
        var applied: [Int] = []
        // A migration may rebuild a table others refer to: foreign keys are off while it runs
        // (the pragma is ignored inside a transaction) and checked before it commits.
        try connection.execute("PRAGMA foreign_keys = OFF")
        defer { try? connection.execute("PRAGMA foreign_keys = ON") }
        for migration in migrations where migration.version > current {
            do {
                try connection.transaction {
                    try connection.execute(migration.sql)
                    let broken = try connection.prepare("PRAGMA foreign_key_check").rows([]) { $0.text(0) }
                    if let table = broken.first {
                        throw SQLiteError(code: 787, message: "migration \(migration.version) leaves rows in \(table) whose parent is gone", sql: nil)
                    }
                    try connection.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
                        .run([.integer(Int64(migration.version)), .text(migration.name), .integer(now.milliseconds)])
                }
            } catch let error as SQLiteError {
                throw MigrationError.failed(migration, error)
            }
            applied.append(migration.version)
        }
        return applied
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
