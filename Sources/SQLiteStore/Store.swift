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

    /// Opens (creating if needed) and migrates the database.
    public init(path: String, migrator: Migrator, readers: Int = 4, now: Date = Date()) throws {
        self.path = path
        let writeConnection = try Connection(path: path)
        try writeConnection.execute("PRAGMA journal_mode = WAL")
        try writeConnection.execute("PRAGMA synchronous = NORMAL")
        try writeConnection.execute("PRAGMA foreign_keys = ON")
        try migrator.migrate(writeConnection, now: now)
        writer = GuardedConnection(writeConnection)
        self.readers = try (0..<max(1, readers)).map { _ in
            let connection = try Connection(path: path, readOnly: true)
            return GuardedConnection(connection)
        }
    }

    /// A state change: committed with `synchronous = FULL`, so it survives power loss.
    func write<T>(_ body: (Connection) throws -> T) throws -> T {
        try writer.with { connection in
            try connection.setSynchronous(full: true)
            return try connection.transaction { try body(connection) }
        }
    }

    /// Log lines: `synchronous = NORMAL` (a crash of the process loses none).
    func writeLog<T>(_ body: (Connection) throws -> T) throws -> T {
        try writer.with { connection in
            try connection.setSynchronous(full: false)
            return try connection.transaction { try body(connection) }
        }
    }

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
