import Rollout
import SQLStore
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A `PGConnection` as the store's session: the store's `?` placeholders become `$1`, `$2`...
/// (outside quotes and comments), the translation kept per statement text.
final class PGSession: SQLSession {
    let connection: PGConnection
    private(set) var changes = 0
    private var translated: [String: String] = [:]
    private var byQuery: [Int: String] = [:]

    init(_ connection: PGConnection) { self.connection = connection }

    var dialect: SQLDialect { .postgres }

    func prepare(_ sql: String) throws -> any SQLStatement {
        if let known = translated[sql] { return PGStatement(session: self, sql: known) }
        let numbered = PGSession.numbered(sql)
        translated[sql] = numbered
        return PGStatement(session: self, sql: numbered)
    }

    func prepare(_ query: Query) throws -> any SQLStatement {
        if let known = byQuery[query.slot] { return PGStatement(session: self, sql: known) }
        let numbered = PGSession.numbered(query.sql)
        byQuery[query.slot] = numbered
        return PGStatement(session: self, sql: numbered)
    }

    func execute(_ sql: String) throws { try connection.executeScript(sql) }

    func ran(_ rows: PGRows) { changes = rows.affected }

    /// `?` -> `$n`, left alone inside '...', "..." and -- comments.
    static func numbered(_ sql: String) -> String {
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var number = 0
        var quote: Character?
        var comment = false
        var previous: Character = " "
        for character in sql {
            if comment {
                if character == "\n" { comment = false }
            } else if let open = quote {
                if character == open { quote = nil }
            } else if character == "'" || character == "\"" {
                quote = character
            } else if character == "-" && previous == "-" {
                comment = true
            } else if character == "?" {
                number += 1
                out += "$\(number)"
                previous = character
                continue
            }
            out.append(character)
            previous = character
        }
        return out
    }
}

final class PGStatement: SQLStatement {
    unowned let session: PGSession
    let sql: String

    init(session: PGSession, sql: String) {
        self.session = session
        self.sql = sql
    }

    func run(_ values: [SQLValue]) throws {
        session.ran(try session.connection.execute(sql, values.map(PGStatement.value)))
    }

    func rows<T>(_ values: [SQLValue], _ map: (any SQLRow) throws -> T) throws -> [T] {
        let answer = try session.connection.execute(sql, values.map(PGStatement.value))
        session.ran(answer)
        return try answer.rows.map { try map(PGRowView(row: $0)) }
    }

    static func value(_ value: SQLValue) -> PGValue {
        switch value {
        case .null: .null
        case .integer(let int): .integer(int)
        case .text(let text): .text(text)
        }
    }
}

struct PGRowView: SQLRow {
    let row: PGRow

    func int(_ column: Int32) -> Int64 { row.int(Int(column)) }
    func isNull(_ column: Int32) -> Bool { row.isNull(Int(column)) }
    func text(_ column: Int32) -> String { row.text(Int(column)) }
    func value<E: CaseIterable & RawRepresentable>(_ column: Int32, as: E.Type) -> E? where E.RawValue == String {
        row.optionalText(Int(column)).flatMap(E.init(rawValue:))
    }
}

/// A connection behind its own lock, made again when the server lost it.
/// @unchecked: the session is only reached through `mutex`.
final class GuardedSession: @unchecked Sendable {
    private let mutex = Mutex<Void>(())
    private var session: PGSession?
    let uri: String

    init(uri: String) { self.uri = uri }

    /// `body` on the connection, in a transaction when `transaction` (BEGIN/COMMIT), made
    /// first if there is none; a connection the server dropped is made again next time.
    func with<T>(transaction: Bool, _ body: (PGSession) throws -> T) throws -> T {
        // The caller's value, made under the lock and handed back to the same caller.
        nonisolated(unsafe) var result: T?
        try mutex.withLock { _ in result = try locked(transaction: transaction, body) }
        return result!
    }

    private func locked<T>(transaction: Bool, _ body: (PGSession) throws -> T) throws -> T {
        let session: PGSession
        if let existing = self.session, existing.connection.isOpen {
            session = existing
        } else {
            self.session = nil
            session = PGSession(try PGConnection(uri: uri))
            self.session = session
        }
        do {
            guard transaction else { return try body(session) }
            return try session.connection.transaction { _ in try body(session) }
        } catch let error as PostgresError where error.sqlState?.hasPrefix("08") == true || error.sqlState?.hasPrefix("57P") == true {
            self.session = nil
            throw error
        }
    }
}

/// The store on a PostgreSQL database, shared by every replica: a write connection and a
/// few readers per process, each a transaction per call; leases on the database's own clock.
public final class PostgresEngine: StoreEngine {
    let writer: GuardedSession
    let readers: [GuardedSession]
    private let nextReader = Atomic<Int>(0)
    let pending = PendingWrites()
    /// Tests only: lease times from this clock instead of the database's.
    let leaseClock: (any RolloutClock)?

    public var dialect: SQLDialect { .postgres }

    /// Connects, and migrates the schema (replicas starting together migrate once).
    public init(uri: String, migrator: PostgresMigrator, readers: Int = 4, now: Date = Date(), leaseClock: (any RolloutClock)? = nil) throws {
        self.leaseClock = leaseClock
        try migrator.migrate(try PGConnection(uri: uri), now: now)
        writer = GuardedSession(uri: uri)
        self.readers = (0..<max(1, readers)).map { _ in GuardedSession(uri: uri) }
    }

    public func write<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        try pending.timed { try writer.with(transaction: true) { try body($0) } }
    }

    public func writeLog<T>(_ body: (any SQLSession) throws -> T) throws -> T { try write(body) }

    /// Each statement on its own, as SQLite's readers do (no BEGIN/COMMIT round trips).
    public func read<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        let index = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue % readers.count
        return try readers[index].with(transaction: false) { try body($0) }
    }

    public var longestWriteWait: Duration? { pending.longest }

    public func leaseNow(_ db: any SQLSession) throws -> Date {
        if let leaseClock { return leaseClock.now }
        let milliseconds = try db.prepare(PostgresEngine.now).rows { $0.int(0) }.first ?? 0
        return Date(milliseconds: milliseconds)
    }

    static let now = Query("SELECT rollgate_now_ms()")
}

extension Store {
    /// A store on a PostgreSQL database (a libpq URI), migrated.
    public convenience init(postgres uri: String, migrator: PostgresMigrator, readers: Int = 4, now: Date = Date(),
                            metrics: RollMetrics = RollMetrics(), leaseClock: (any RolloutClock)? = nil, replica: String = "") throws {
        self.init(engine: try PostgresEngine(uri: uri, migrator: migrator, readers: readers, now: now, leaseClock: leaseClock),
                  metrics: metrics, replica: replica)
    }
}
