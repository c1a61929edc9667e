import Synchronization

/// A value bound to a statement's `?` or read from a row, on either engine.
public enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case text(String)
}

/// The SQL dialect a session speaks: the store's statements are written once, in the SQL
/// both engines share, and the few places that differ ask (a hint, a row order, a claim).
public enum SQLDialect: Sendable, Equatable {
    case sqlite
    case postgres
}

/// SQL every connection prepares once and finds again by number rather than by hashing its
/// text (the hot reads' SQL is hundreds of bytes). Declare each as a `static let`: every
/// `Query` made takes a slot for the life of the process.
public struct Query: Sendable {
    public let sql: String
    public let slot: Int
    private static let slots = Atomic<Int>(0)

    public init(_ sql: String) {
        self.sql = sql
        slot = Query.slots.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}

/// One connection to the database as the store uses it, whichever engine is behind it: a
/// statement with `?` placeholders, run or read row by row. Not for two threads at once (the
/// engine hands each caller a session of its own for the length of one read or write).
public protocol SQLSession: AnyObject {
    var dialect: SQLDialect { get }
    func prepare(_ sql: String) throws -> any SQLStatement
    func prepare(_ query: Query) throws -> any SQLStatement
    /// Statements without parameters or rows (DDL, a pragma).
    func execute(_ sql: String) throws
    /// Rows the last statement run inserted, updated or deleted.
    var changes: Int { get }
}

public protocol SQLStatement: AnyObject {
    /// Runs a statement that returns no rows.
    func run(_ values: [SQLValue]) throws
    /// Every row, mapped.
    func rows<T>(_ values: [SQLValue], _ map: (any SQLRow) throws -> T) throws -> [T]
}

extension SQLStatement {
    public func run() throws { try run([]) }
    public func rows<T>(_ map: (any SQLRow) throws -> T) throws -> [T] { try rows([], map) }
}

/// The current row of a statement; valid only inside `rows`' closure.
public protocol SQLRow {
    func int(_ column: Int32) -> Int64
    func isNull(_ column: Int32) -> Bool
    func text(_ column: Int32) -> String
    /// The column's text as one of an enum's raw values; nil for NULL or text that is none.
    func value<E: CaseIterable & RawRepresentable>(_ column: Int32, as: E.Type) -> E? where E.RawValue == String
}

extension SQLRow {
    public func optionalInt(_ column: Int32) -> Int64? { isNull(column) ? nil : int(column) }
    public func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }
    public func value<E: CaseIterable & RawRepresentable>(_ column: Int32) -> E? where E.RawValue == String { value(column, as: E.self) }
}
