import Rollout
import SQLStore
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A connection behind its own lock.
/// @unchecked: the connection is only reached through `mutex`.
final class GuardedConnection: @unchecked Sendable {
    private let mutex: Mutex<Void> = Mutex(())
    private let connection: Connection

    init(_ connection: Connection) { self.connection = connection }

    func with<T>(_ body: (Connection) throws -> T) rethrows -> T {
        try mutex.withLock { _ in try body(connection) }
    }

    func tryWith<T>(_ body: (Connection) throws -> T) rethrows -> T? {
        guard let result = try mutex.withLockIfAvailable({ _ in try body(connection) }) else { return nil }
        return result
    }
}

/// The SQLite database: WAL, one writer connection, a few reader connections.
public final class SQLiteEngine: StoreEngine {
    public let path: String
    let writer: GuardedConnection
    let readers: [GuardedConnection]
    private let nextReader = Atomic<Int>(0)
    /// The writes in hand and since when.
    let pending = PendingWrites()
    /// The clock lease expiries are computed and compared on: one clock for every process
    /// on this database (SQLite's file lives on one host).
    let leaseClock: any RolloutClock

    public var dialect: SQLDialect { .sqlite }

    /// Opens (creating if needed) and migrates the database. A database that cannot be
    /// written is refused here, before anything is started.
    public init(path: String, migrator: Migrator, readers: Int = 4, now: Date = Date(), leaseClock: any RolloutClock = SystemClock()) throws {
        self.path = path
        self.leaseClock = leaseClock
        let writeConnection: Connection
        do {
            // Writes that fail are retried with backoff by their callers: waiting for a lock
            // here only holds a thread, so the wait is short.
            writeConnection = try Connection(path: path, busyTimeout: .seconds(1))
            try SQLiteEngine.configureWriter(writeConnection)
        } catch {
            throw SQLiteEngine.explainUnwritable(error, path: path)
        }
        try migrator.migrate(writeConnection, now: now)
        writer = GuardedConnection(writeConnection)
        self.readers = try (0..<max(1, readers)).map { _ in
            let connection = try Connection(path: path, readOnly: true)
            return GuardedConnection(connection)
        }
    }

    /// How every connection that writes the file sets it up (the server, `rollgate migrate`).
    public static func configureWriter(_ connection: Connection) throws {
        // A new database gives pruned pages back (incremental_vacuum after each pass); on an
        // existing one this changes nothing (that takes a VACUUM).
        try connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        try connection.execute("PRAGMA journal_mode = WAL")
        // The write-ahead log is cut back to 64 MiB after a checkpoint, however large a
        // burst made it.
        try connection.execute("PRAGMA journal_size_limit = 67108864")
        try connection.execute("PRAGMA synchronous = NORMAL")
        try connection.execute("PRAGMA foreign_keys = ON")
    }

    /// A write refused because the file cannot be written (read-only, full, no permission),
    /// said so that an operator at start-up knows what to fix; other errors pass unchanged.
    public static func explainUnwritable(_ error: Error, path: String) -> Error {
        guard let error = error as? SQLiteError, [8, 10, 13, 14].contains(error.code & 0xff) else { return error }
        return SQLiteError(code: error.code, message: "the database \(path) cannot be written (\(error.message)): "
            + "a read-only file or file system, a full disk, or a directory rollgate may not write to; nothing was started, "
            + "fix it and start again", sql: nil)
    }

    /// A state change: committed with `synchronous = FULL`, so it survives power loss.
    public func write<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        try pending.timed {
            try writer.with { connection in
                try connection.setSynchronous(full: true)
                return try connection.transaction { try body(connection) }
            }
        }
    }

    /// Log lines: `synchronous = NORMAL` (a crash of the process loses none).
    public func writeLog<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        try pending.timed {
            try writer.with { connection in
                try connection.setSynchronous(full: false)
                return try connection.transaction { try body(connection) }
            }
        }
    }

    public var longestWriteWait: Duration? { pending.longest }

    public func leaseNow(_ db: any SQLSession) throws -> Date { leaseClock.now }

    /// Checkpoints the write-ahead log into the database file (clean shutdown, backups).
    public func checkpoint() throws {
        try writer.with { try $0.checkpoint() }
    }

    public func read<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        let start = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue
        for offset in 0..<readers.count {
            if let result = try readers[(start + offset) % readers.count].tryWith(body) { return result }
        }
        return try readers[start % readers.count].with(body)
    }
}

extension Store {
    /// A store on a SQLite file: opened (created if needed) and migrated.
    public convenience init(path: String, migrator: Migrator, readers: Int = 4, now: Date = Date(), metrics: RollMetrics = RollMetrics(),
                            leaseClock: any RolloutClock = SystemClock(), replica: String = "") throws {
        self.init(engine: try SQLiteEngine(path: path, migrator: migrator, readers: readers, now: now, leaseClock: leaseClock),
                  metrics: metrics, replica: replica)
    }

    /// The SQLite engine behind the store, if that is what it is (upkeep that only a file has).
    public var sqlite: SQLiteEngine? { engine as? SQLiteEngine }

    /// SQLite's writer connection, for upkeep only a file has (pages, VACUUM).
    var writer: GuardedConnection {
        get throws {
            guard let sqlite else { throw SQLiteError(code: 21, message: "the store is not on SQLite", sql: nil) }
            return sqlite.writer
        }
    }

    /// The file, for a store on SQLite.
    public var path: String? { sqlite?.path }

    /// Checkpoints SQLite's write-ahead log into the file; nothing on other engines.
    public func checkpoint() throws { try sqlite?.checkpoint() }
}
