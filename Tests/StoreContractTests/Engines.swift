import Foundation
import PostgresStore
import PostgresTesting
import Rollout
import SQLiteStore
import SQLStore
import Synchronization
import Testing

/// The engines the store's contract is held on: every test of the queue, the journal,
/// leases, fencing, batches, resume, locks and retention runs on both.
enum Engine: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// One PostgreSQL for the whole run (initdb costs a second or two); a database per test.
let postgresServer: Result<PostgresServer, Error> = Result { try PostgresServer() }
private let postgresDatabases = Mutex<[String: String]>([:])

/// The store on `engine` for the database `db` stands for: SQLite's file at `db.path`, or a
/// PostgreSQL database made for it on the shared server (the same one each time for the same
/// `db`, so two stores opened on it are two processes on one database). `leaseClock` replaces
/// the lease clock (the host's on SQLite, the database's on PostgreSQL) for tests that move
/// time by hand.
func makeStore(_ engine: Engine, _ db: TempDatabase, leaseClock: (any RolloutClock)? = nil, replica: String = "") throws -> Store {
    switch engine {
    case .sqlite:
        return try Store(path: db.path, migrator: Migrator(directory: migrationsDirectory), leaseClock: leaseClock ?? SystemClock(),
                         replica: replica)
    case .postgres:
        let uri = try postgresDatabases.withLock { known -> String in
            if let uri = known[db.path] { return uri }
            let uri = try postgresServer.get().createDatabase()
            known[db.path] = uri
            return uri
        }
        return try Store(postgres: uri, migrator: PostgresMigrator(directory: migrationsDirectory + "/postgres"), leaseClock: leaseClock,
                         replica: replica)
    }
}
