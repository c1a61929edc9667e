import CSQLite
import SQLStore
import Synchronization

/// A failed SQLite call: result code, SQLite's message and the SQL that failed.
public struct SQLiteError: Error, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public let sql: String?

    public var description: String {
        sql.map { "SQLite error \(code): \(message) (in: \($0))" } ?? "SQLite error \(code): \(message)"
    }

    /// A CHECK, UNIQUE or NOT NULL constraint said no.
    public var isConstraintViolation: Bool { code & 0xff == SQLITE_CONSTRAINT }
}


/// One SQLite connection. The handle has one owner and is closed in `deinit`; callers
/// serialize access (the store holds each connection behind a lock).
public final class Connection: SQLSession {
    public var dialect: SQLDialect { .sqlite }

    let handle: OpaquePointer
    private var statements: [String: Statement] = [:]
    private var queries: [Statement?] = []
    /// `PRAGMA synchronous` as last set: FULL makes a commit survive power loss.
    private var synchronousFull = false

    /// `busyTimeout`: how long a statement waits for a lock another connection holds before
    /// it fails with SQLITE_BUSY (callers that retry keep it short).
    public init(path: String, readOnly: Bool = false, busyTimeout: Duration = .seconds(5)) throws {
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
            | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, message: "cannot open \(path): \(message)", sql: nil)
        }
        handle = db
        sqlite3_busy_timeout(db, Int32(busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000))
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        statements.removeAll()
        queries.removeAll()
        sqlite3_close_v2(handle)
    }

    public func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(errorMessage)
            throw SQLiteError(code: rc, message: message, sql: sql)
        }
    }

    public func prepare(_ sql: String) throws -> any SQLStatement { try statement(sql) }
    public func prepare(_ query: Query) throws -> any SQLStatement { try statement(query) }

    /// A prepared statement, cached by its SQL text and reset for reuse.
    public func statement(_ sql: String) throws -> Statement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        let statement = try Statement(connection: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    /// A `Query`'s statement, prepared on first use, reset for reuse.
    public func statement(_ query: Query) throws -> Statement {
        if query.slot < queries.count, let cached = queries[query.slot] {
            cached.reset()
            return cached
        }
        let statement = try Statement(connection: self, sql: query.sql)
        if query.slot >= queries.count { queries.append(contentsOf: repeatElement(nil, count: query.slot + 1 - queries.count)) }
        queries[query.slot] = statement
        return statement
    }

    /// Runs `body` in one transaction: committed if it returns, rolled back if it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// FULL for state changes (fsync at every commit), NORMAL for log lines (durable across a
    /// crash of the process; a power loss may take the last ones). Set between transactions.
    func setSynchronous(full: Bool) throws {
        guard full != synchronousFull else { return }
        try execute(full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
        synchronousFull = full
    }

    /// The number a `PRAGMA name` answers (`page_count`, `freelist_count`, `auto_vacuum`...).
    public func pragma(_ name: String) throws -> Int64 {
        try prepare("PRAGMA \(name)").rows([]) { $0.int(0) }.first ?? 0
    }

    /// Moves the write-ahead log into the database file and empties it, so the `.db` file
    /// alone holds everything.
    public func checkpoint() throws {
        try execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Copies the whole database to `path` with SQLite's online backup API: a consistent
    /// snapshot while other connections go on writing. The copy is a plain database file
    /// (journal mode DELETE), ready to be served.
    public func backup(to path: String) throws {
        let destination = try Connection(path: path)
        guard let backup = sqlite3_backup_init(destination.handle, "main", handle, "main") else {
            throw destination.error(sqlite3_errcode(destination.handle), sql: nil)
        }
        var rc: Int32
        repeat {
            rc = sqlite3_backup_step(backup, -1)
            if rc == SQLITE_BUSY || rc == SQLITE_LOCKED { sqlite3_sleep(50) }
        } while rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED
        let finished = sqlite3_backup_finish(backup)
        guard rc == SQLITE_DONE, finished == SQLITE_OK else {
            throw SQLiteError(code: rc == SQLITE_DONE ? finished : rc, message: "backup to \(path) failed: \(String(cString: sqlite3_errstr(rc == SQLITE_DONE ? finished : rc)))", sql: nil)
        }
        try destination.execute("PRAGMA journal_mode = DELETE")
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    public var changes: Int { Int(sqlite3_changes(handle)) }

    func error(_ rc: Int32, sql: String?) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }
}

public final class Statement: SQLStatement {
    let handle: OpaquePointer
    let sql: String
    unowned let connection: Connection

    init(connection: Connection, sql: String) throws {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v2(connection.handle, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw connection.error(rc, sql: sql) }
        self.handle = statement
        self.sql = sql
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    @discardableResult
    public func bind(_ values: [SQLValue]) throws -> Statement {
        for (index, value) in values.enumerated() {
            let position = Int32(index + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(handle, position)
            case .integer(let int): rc = sqlite3_bind_int64(handle, position, int)
            case .text(let text): rc = sqlite3_bind_text(handle, position, text, -1, rollgate_sqlite_transient())
            }
            guard rc == SQLITE_OK else { throw connection.error(rc, sql: sql) }
        }
        return self
    }

    /// Steps once: true while a row is available.
    public func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = connection.error(rc, sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Runs a statement that returns no rows.
    public func run(_ values: [SQLValue] = []) throws {
        try bind(values)
        while try step() {}
        sqlite3_reset(handle)
    }

    /// Each row in turn, none kept (a table of millions of rows read in constant memory).
    public func forEachRow(_ values: [SQLValue] = [], _ body: (Row) throws -> Void) throws {
        try bind(values)
        defer { sqlite3_reset(handle) }
        while try step() { try body(Row(statement: self)) }
    }

    /// Every row, mapped.
    public func rows<T>(_ values: [SQLValue], _ map: (any SQLRow) throws -> T) throws -> [T] {
        try bind(values)
        var result: [T] = []
        while try step() { result.append(try map(Row(statement: self))) }
        sqlite3_reset(handle)
        return result
    }
}

/// The current row of a statement; valid only inside `rows`' closure.
public struct Row: SQLRow {
    let statement: Statement

    public func int(_ column: Int32) -> Int64 { sqlite3_column_int64(statement.handle, column) }
    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement.handle, column) == SQLITE_NULL }
    public func optionalInt(_ column: Int32) -> Int64? { isNull(column) ? nil : int(column) }
    public func text(_ column: Int32) -> String {
        guard let bytes = utf8(column) else { return "" }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The column's text as SQLite holds it, valid until the next step: the pointer first,
    /// then its length (SQLite's documented order), so no `strlen` over it again.
    private func utf8(_ column: Int32) -> UnsafeBufferPointer<UInt8>? {
        guard let text = sqlite3_column_text(statement.handle, column) else { return nil }
        return UnsafeBufferPointer(start: text, count: Int(sqlite3_column_bytes(statement.handle, column)))
    }
    public func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }

    /// The column's value as SQLite stores it (integer, text or NULL; a real as its text).
    public func value(_ column: Int32) -> SQLValue {
        switch sqlite3_column_type(statement.handle, column) {
        case SQLITE_NULL: .null
        case SQLITE_INTEGER: .integer(int(column))
        case SQLITE_FLOAT: .text(String(sqlite3_column_double(statement.handle, column)))
        default: .text(text(column))
        }
    }

    /// The column's text as one of an enum's raw values, compared byte for byte (no String
    /// made for it); nil for NULL or text that is none of them.
    public func value<E: CaseIterable & RawRepresentable>(_ column: Int32, as _: E.Type = E.self) -> E? where E.RawValue == String {
        guard let bytes = utf8(column) else { return nil }
        for candidate in E.allCases {
            var raw = candidate.rawValue
            if raw.withUTF8({ $0.elementsEqual(bytes) }) { return candidate }
        }
        return nil
    }
}
