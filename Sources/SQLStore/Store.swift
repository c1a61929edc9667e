import Rollout
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the store needs of a database engine (SQLite's file, PostgreSQL's server): sessions
/// for a read, a state change and a batch of log lines, each in one transaction, and the
/// clock leases are measured on.
public protocol StoreEngine: Sendable {
    var dialect: SQLDialect { get }
    /// A state change in one transaction, durable once it returns.
    func write<T>(_ body: (any SQLSession) throws -> T) throws -> T
    /// Log lines in one transaction: a crash of the process loses none (a power loss may take
    /// the last ones on SQLite).
    func writeLog<T>(_ body: (any SQLSession) throws -> T) throws -> T
    func read<T>(_ body: (any SQLSession) throws -> T) throws -> T
    /// How long the oldest write in hand has waited (for the writer, then its commit); nil
    /// when none is.
    var longestWriteWait: Duration? { get }
    /// Now, on the clock lease expiries are computed and compared on: one clock for every
    /// process on the database (SQLite: the host's, where the file is; PostgreSQL: the
    /// database's own, whichever replica asks). Asked inside the transaction that uses it.
    func leaseNow(_ db: any SQLSession) throws -> Date
}

/// rollgate's records (runs, steps, logs, leases, events, deliveries, locks, left-out
/// targets), written once in the SQL both engines speak, over whichever engine holds them.
public final class Store: Sendable {
    public let engine: any StoreEngine
    /// Counts runs as they end (every end goes through the store).
    let metrics: RollMetrics
    /// This process's name (`--name`), written on each run it claims or takes over
    /// (`rolled_by`); empty: the lease owner's host name.
    public let replica: String

    public init(engine: any StoreEngine, metrics: RollMetrics = RollMetrics(), replica: String = "") {
        self.engine = engine
        self.metrics = metrics
        self.replica = replica
    }

    public var dialect: SQLDialect { engine.dialect }

    public func write<T>(_ body: (any SQLSession) throws -> T) throws -> T { try engine.write(body) }
    public func writeLog<T>(_ body: (any SQLSession) throws -> T) throws -> T { try engine.writeLog(body) }
    public func read<T>(_ body: (any SQLSession) throws -> T) throws -> T { try engine.read(body) }

    /// How long the oldest write in hand has waited; `/healthz` says `degraded` past a few seconds.
    public var longestWriteWait: Duration? { engine.longestWriteWait }
}

extension RawRepresentable where RawValue == String {
    /// The value as an SQL string literal, for a state a statement names: written from the
    /// enum, never typed again, and kept a literal so the planner can match partial indexes by it.
    public var sql: String { "'\(rawValue)'" }
}

/// The writes in hand, each from when it asked for the writer (monotonic time).
public final class PendingWrites: Sendable {
    private let started = Mutex<(next: UInt64, at: [UInt64: ContinuousClock.Instant])>((0, [:]))

    public init() {}

    public func timed<T>(_ body: () throws -> T) rethrows -> T {
        let ticket = started.withLock { state in
            state.next += 1
            state.at[state.next] = .now
            return state.next
        }
        defer { started.withLock { _ = $0.at.removeValue(forKey: ticket) } }
        return try body()
    }

    public var longest: Duration? {
        started.withLock { state in state.at.values.min().map { ContinuousClock.now - $0 } }
    }
}
