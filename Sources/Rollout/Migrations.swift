#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One numbered SQL file of an engine's migrations, e.g. `0002_simulated_targets.sql`.
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
    case failed(Migration, any Error)

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

/// An engine's migrations in order, checked: numbered, no version twice. Each engine applies
/// them its own way (one transaction each, recorded in `schema_migrations`); a shipped
/// migration is never edited: a change is a new file.
public struct MigrationFiles: Sendable {
    public let migrations: [Migration]

    public init(migrations: [Migration]) throws {
        let sorted = migrations.sorted { $0.version < $1.version }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.version == b.version {
            throw MigrationError.duplicateVersion(a.version)
        }
        self.migrations = sorted
    }

    /// Reads every `NNNN_name.sql` in a directory (not its subdirectories: PostgreSQL's are in
    /// `postgres/` beside SQLite's).
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

    /// Applies the migrations after `current` in order, each by `apply` (one transaction that
    /// also records it); returns the versions applied. A database newer than these files is
    /// refused; a migration that fails stops the rest, named in the error.
    public func apply(after current: Int, _ apply: (Migration) throws -> Void) throws -> [Int] {
        if current > latestVersion {
            throw MigrationError.databaseNewerThanBinary(database: current, known: latestVersion)
        }
        var applied: [Int] = []
        for migration in migrations where migration.version > current {
            do {
                try apply(migration)
            } catch {
                throw MigrationError.failed(migration, error)
            }
            applied.append(migration.version)
        }
        return applied
    }
}
