import Rollout
import Synchronization

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
public final class Store: Sendable {
    public let path: String
    let writer: GuardedConnection
    let readers: [GuardedConnection]
    private let nextReader = Atomic<Int>(0)
    /// Counts runs as they end (every end goes through the store).
    let metrics: RollMetrics
    /// The writes in hand and since when.
    let pending = PendingWrites()
    /// The clock lease expiries are computed and compared on: one clock for every process
    /// on this database (SQLite's file lives on one host).
    let leaseClock: any RolloutClock
    /// This process's name (`--name`), written on each run it claims or takes over
    /// (`rolled_by`); empty: the lease owner's host name.
    public let replica: String

    /// Opens (creating if needed) and migrates the database. A database that cannot be
    /// written is refused here, before anything is started.
    public init(path: String, migrator: Migrator, readers: Int = 4, now: Date = Date(), metrics: RollMetrics = RollMetrics(),
                leaseClock: any RolloutClock = SystemClock(), replica: String = "") throws {
        self.path = path
        self.replica = replica
        self.metrics = metrics
        self.leaseClock = leaseClock
        let writeConnection: Connection
        do {
            // Writes that fail are retried with backoff by their callers: waiting for a lock
            // here only holds a thread, so the wait is short.
            writeConnection = try Connection(path: path, busyTimeout: .seconds(1))
            try Store.configureWriter(writeConnection)
        } catch {
            throw Store.explainUnwritable(error, path: path)
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

    /// A state change: committed with `synchronous = FULL`, so it survives power loss.
    /// A write refused because the file cannot be written (read-only, full, no permission),
    /// said so that an operator at start-up knows what to fix; other errors pass unchanged.
    public static func explainUnwritable(_ error: Error, path: String) -> Error {
        guard let error = error as? SQLiteError, [8, 10, 13, 14].contains(error.code & 0xff) else { return error }
        return SQLiteError(code: error.code, message: "the database \(path) cannot be written (\(error.message)): "
            + "a read-only file or file system, a full disk, or a directory rollgate may not write to; nothing was started, "
            + "fix it and start again", sql: nil)
    }

    func write<T>(_ body: (Connection) throws -> T) throws -> T {
        try pending.timed {
            try writer.with { connection in
                try connection.setSynchronous(full: true)
                return try connection.transaction { try body(connection) }
            }
        }
    }

    /// Log lines: `synchronous = NORMAL` (a crash of the process loses none).
    func writeLog<T>(_ body: (Connection) throws -> T) throws -> T {
        try pending.timed {
            try writer.with { connection in
                try connection.setSynchronous(full: false)
                return try connection.transaction { try body(connection) }
            }
        }
    }

    /// How long the oldest write in hand has waited (for the write lock, then for its
    /// commit); nil when none is. `/healthz` says `degraded` past a few seconds.
    public var longestWriteWait: Duration? { pending.longest }

    /// Checkpoints the write-ahead log into the database file (clean shutdown, backups).
    public func checkpoint() throws {
        try writer.with { try $0.checkpoint() }
    }

    func read<T>(_ body: (Connection) throws -> T) throws -> T {
        let start = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue
        for offset in 0..<readers.count {
            if let result = try readers[(start + offset) % readers.count].tryWith(body) { return result }
        }
        return try readers[start % readers.count].with(body)
    }
}

extension RawRepresentable where RawValue == String {
    /// The value as an SQL string literal, for a state a statement names: written from the
    /// enum, never typed again, and kept a literal so SQLite can match partial indexes by it.
    var sql: String { "'\(rawValue)'" }
}

/// The writes in hand, each from when it asked for the writer (monotonic time).
final class PendingWrites: Sendable {
    private let started = Mutex<(next: UInt64, at: [UInt64: ContinuousClock.Instant])>((0, [:]))

    func timed<T>(_ body: () throws -> T) rethrows -> T {
        let ticket = started.withLock { state in
            state.next += 1
            state.at[state.next] = .now
            return state.next
        }
        defer { started.withLock { _ = $0.at.removeValue(forKey: ticket) } }
        return try body()
    }

    var longest: Duration? {
        started.withLock { state in state.at.values.min().map { ContinuousClock.now - $0 } }
    }
}
