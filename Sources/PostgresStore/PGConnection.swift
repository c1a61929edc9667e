import CLibPQ
import Rollout
#if canImport(Glibc)
import Glibc
#endif

/// A value bound to a statement's `$n` or read from a row. Sent in libpq's text format: the
/// server casts it to the column's type (a wrong one is the statement's error, not a silent
/// coercion).
public enum PGValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case double(Double)
    case text(String)
    case bool(Bool)

    var wire: String? {
        switch self {
        case .null: nil
        case .integer(let value): String(value)
        case .double(let value): String(value)
        case .text(let value): value
        case .bool(let value): value ? "true" : "false"
        }
    }
}

/// What PostgreSQL (or libpq, for a connection that failed) said. The SQLSTATE decides
/// whether it may pass by itself: a lost connection, a server shutting down or starting, a
/// failover's read-only standby, a serialization failure, a deadlock, a statement timeout
/// or a lock wait may; a constraint, a syntax error or a missing table never will.
public struct PostgresError: Error, CustomStringConvertible, StoreFault {
    /// Five characters (`40001`), nil when libpq itself failed (no connection).
    public let sqlState: String?
    public let message: String
    /// The statement, for the server's log only (`summary` leaves it out).
    public let statement: String?

    public init(sqlState: String?, message: String, statement: String? = nil) {
        self.sqlState = sqlState
        self.message = message
        self.statement = statement
    }

    public var summary: String { sqlState.map { "PostgreSQL \($0): \(message)" } ?? "PostgreSQL: \(message)" }
    public var description: String { statement.map { "\(summary) (in: \($0))" } ?? summary }

    public var mayPassLater: Bool {
        guard let state = sqlState else { return true }
        if state.hasPrefix("08") || state.hasPrefix("53") || state.hasPrefix("57P") { return true }
        return ["40001", "40P01", "57014", "25006", "55P03", "55000"].contains(state)
    }

    /// A UNIQUE index said no (the queue reads it as "someone else has it").
    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// A CHECK, NOT NULL, foreign key or UNIQUE constraint said no.
    public var isConstraintViolation: Bool { sqlState?.hasPrefix("23") == true }
}

/// libpq could not be loaded (not installed, or `ROLLGATE_LIBPQ` names no libpq): a fact of
/// the host, not of the database, so it never passes by waiting.
public struct LibPQUnavailable: Error, CustomStringConvertible {
    public let description: String
}

/// The rows of one answer, copied out of libpq's result (which is freed at once).
public struct PGRows: Sendable {
    public let columns: [String]
    public let rows: [PGRow]
    /// Rows an INSERT, UPDATE or DELETE touched.
    public let affected: Int
}

public struct PGRow: Sendable {
    let values: [String?]

    public func isNull(_ column: Int) -> Bool { values[column] == nil }
    public func text(_ column: Int) -> String { values[column] ?? "" }
    public func optionalText(_ column: Int) -> String? { values[column] }
    public func int(_ column: Int) -> Int64 { values[column].flatMap { Int64($0) } ?? 0 }
    public func optionalInt(_ column: Int) -> Int64? { values[column].flatMap { Int64($0) } }
    public func double(_ column: Int) -> Double { values[column].flatMap { Double($0) } ?? 0 }
    public func bool(_ column: Int) -> Bool { values[column] == "t" }
}

/// One notification of `LISTEN`: its channel and payload, and the backend that sent it.
public struct PGNotification: Sendable, Equatable {
    public let channel: String
    public let payload: String
    public let senderPID: Int32
}

/// One libpq connection: statements with bound parameters, transactions, LISTEN/NOTIFY.
/// Not for two threads at once (the store serializes its use, as SQLite's `Connection`).
public final class PGConnection {
    private var handle: OpaquePointer?
    /// The connection URI, kept to reconnect; never printed (it may hold a password).
    private let uri: String

    /// `uri`: any libpq connection string or URI (`postgres://user@host:5432/db?sslmode=...`,
    /// several hosts with `target_session_attrs=read-write`); the password from libpq's own
    /// places (`PGPASSWORD`, `~/.pgpass`, `passfile`) unless the URI names one.
    public init(uri: String) throws {
        self.uri = uri
        guard rollgate_pq_load() == 0 else { throw LibPQUnavailable(description: String(cString: rollgate_pq_load_error())) }
        handle = try PGConnection.connect(uri)
    }

    /// A connection to `uri`, its notices quieted, or the error saying why there is none.
    private static func connect(_ uri: String) throws -> OpaquePointer {
        let handle = rollgate_PQconnectdb(uri)
        guard let handle, rollgate_PQstatus(handle) == CONNECTION_OK else {
            let message = handle.map { PGConnection.trimmed(rollgate_PQerrorMessage($0)) } ?? "out of memory"
            if let handle { rollgate_PQfinish(handle) }
            throw PostgresError(sqlState: nil, message: "cannot connect: \(message)")
        }
        // The server's notices (`relation ... already exists, skipping`) are not errors: libpq
        // would print them on stderr, into a CLI's output or the server's log.
        rollgate_PQsetNoticeProcessor(handle, { _, _ in }, nil)
        return handle
    }

    deinit { if let handle { rollgate_PQfinish(handle) } }

    /// Whether the connection is up as far as libpq knows (a dead server is found by the
    /// next statement).
    public var isOpen: Bool { handle.map { rollgate_PQstatus($0) == CONNECTION_OK } ?? false }

    /// Drops the connection and makes a new one (to the same URI, so a failover's new primary
    /// is found when the URI names every host with `target_session_attrs=read-write`).
    public func reconnect() throws {
        if let handle { rollgate_PQfinish(handle) }
        handle = nil
        handle = try PGConnection.connect(uri)
    }


    /// The server's process for this connection (what `pg_terminate_backend` takes).
    public var backendPID: Int32 { handle.map { rollgate_PQbackendPID($0) } ?? 0 }

    /// Runs one statement with `$1...` bound to `parameters`.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [PGValue] = []) throws -> PGRows {
        guard let handle else { throw PostgresError(sqlState: "08003", message: "the connection is closed", statement: sql) }
        let wire = parameters.map(\.wire)
        let result: OpaquePointer? = withCStrings(wire) { pointers in
            rollgate_PQexecParams(handle, sql, Int32(pointers.count), nil, pointers, nil, nil, 0)
        }
        defer { rollgate_PQclear(result) }
        guard let result else {
            throw PostgresError(sqlState: nil, message: PGConnection.trimmed(rollgate_PQerrorMessage(handle)), statement: sql)
        }
        switch rollgate_PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PGConnection.rows(of: result)
        default:
            throw PGConnection.error(of: result, handle: handle, statement: sql)
        }
    }

    /// Several statements in one string, no parameters (a migration file).
    public func executeScript(_ sql: String) throws {
        guard let handle else { throw PostgresError(sqlState: "08003", message: "the connection is closed") }
        let result = rollgate_PQexec(handle, sql)
        defer { rollgate_PQclear(result) }
        guard let result else { throw PostgresError(sqlState: nil, message: PGConnection.trimmed(rollgate_PQerrorMessage(handle))) }
        switch rollgate_PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY: return
        default: throw PGConnection.error(of: result, handle: handle, statement: nil)
        }
    }

    /// `body` in one transaction: committed when it returns, rolled back when it throws.
    public func transaction<T>(_ body: (PGConnection) throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body(self)
            try execute("COMMIT")
            return value
        } catch {
            _ = try? execute("ROLLBACK")
            throw error
        }
    }

    /// `LISTEN` on a channel (a quoted identifier).
    public func listen(_ channel: String) throws {
        try execute("LISTEN " + PGConnection.identifier(channel))
    }

    /// The notifications that have arrived, waiting up to `timeout` for the first one
    /// (poll(2) on the connection's socket). A lost connection throws.
    public func notifications(waitingUpTo timeout: Duration) throws -> [PGNotification] {
        guard let handle else { throw PostgresError(sqlState: "08003", message: "the connection is closed") }
        var found = drainNotifications(handle)
        if !found.isEmpty { return found }
        var descriptor = pollfd(fd: rollgate_PQsocket(handle), events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(max(0, min(Double(Int32.max), Double(timeout.components.seconds) * 1000
                                                + Double(timeout.components.attoseconds) / 1e15)))
        let ready = poll(&descriptor, 1, milliseconds)
        if ready > 0 {
            guard rollgate_PQconsumeInput(handle) == 1 else {
                throw PostgresError(sqlState: "08006", message: PGConnection.trimmed(rollgate_PQerrorMessage(handle)))
            }
            found = drainNotifications(handle)
        }
        return found
    }

    private func drainNotifications(_ handle: OpaquePointer) -> [PGNotification] {
        var found: [PGNotification] = []
        while let notice = rollgate_PQnotifies(handle) {
            found.append(PGNotification(channel: String(cString: notice.pointee.relname),
                                        payload: String(cString: notice.pointee.extra), senderPID: notice.pointee.be_pid))
            rollgate_PQfreemem(notice)
        }
        return found
    }

    /// A name quoted as an SQL identifier (`"a""b"`).
    public static func identifier(_ name: String) -> String {
        "\"" + name.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }

    // MARK: - Results

    private static func rows(of result: OpaquePointer) -> PGRows {
        let count = Int(rollgate_PQntuples(result)), width = Int(rollgate_PQnfields(result))
        let columns = (0..<width).map { String(cString: rollgate_PQfname(result, Int32($0))) }
        var rows: [PGRow] = []
        rows.reserveCapacity(count)
        for row in 0..<count {
            rows.append(PGRow(values: (0..<width).map { column in
                rollgate_PQgetisnull(result, Int32(row), Int32(column)) == 1 ? nil : String(cString: rollgate_PQgetvalue(result, Int32(row), Int32(column)))
            }))
        }
        let affected = Int(String(cString: rollgate_PQcmdTuples(result))) ?? 0
        return PGRows(columns: columns, rows: rows, affected: affected)
    }

    private static func error(of result: OpaquePointer, handle: OpaquePointer, statement: String?) -> PostgresError {
        let state = rollgate_PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        let primary = rollgate_PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
        let message = primary ?? trimmed(rollgate_PQerrorMessage(handle))
        // A lost connection has no SQLSTATE from the server: libpq's words, as a connection failure.
        return PostgresError(sqlState: state ?? (rollgate_PQstatus(handle) == CONNECTION_OK ? nil : "08006"), message: message, statement: statement)
    }

    private static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "unknown error" }
        var text = Substring(String(cString: message))
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}

/// `body` with a C array of the strings (NULL for nil), valid for its duration.
private func withCStrings<T>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> T) -> T {
    let owned: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0) } ?? nil }
    defer { for pointer in owned { free(pointer) } }
    return body(owned.map { $0.map { UnsafePointer($0) } })
}
