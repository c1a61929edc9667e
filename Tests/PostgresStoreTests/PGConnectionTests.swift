import Foundation
import Testing
import PostgresStore
import PostgresTesting
import Rollout

/// One PostgreSQL for this process's PostgreSQL tests (initdb costs a second or two); each
/// test takes a database of its own on it.
let sharedPostgres: Result<PostgresServer, Error> = Result { try PostgresServer() }
func postgres() throws -> PostgresServer { try sharedPostgres.get() }

/// libpq behind `PGConnection`, against a real server: values both ways, errors by SQLSTATE
/// (and which may pass), transactions, LISTEN/NOTIFY, and a server restart seen as an error
/// that passes once the connection is made again.
@Suite(.serialized) struct PGConnectionTests {
    @Test func valuesGoAndComeBackAsTheyWere() throws {
        let db = try PGConnection(uri: try postgres().createDatabase())
        try db.execute("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, n BIGINT, ok BOOLEAN, x DOUBLE PRECISION)")
        let inserted = try db.execute("INSERT INTO t (name, n, ok, x) VALUES ($1, $2, $3, $4) RETURNING id",
                                      [.text("it's \"quoted\" ü\n'; DROP TABLE t; --"), .integer(Int64.min), .bool(true), .double(0.25)])
        #expect(inserted.rows.first?.int(0) == 1)
        try db.execute("INSERT INTO t (name, n, ok, x) VALUES ($1, $2, $3, $4)", [.text(""), .null, .bool(false), .null])
        let rows = try db.execute("SELECT name, n, ok, x FROM t ORDER BY id")
        #expect(rows.columns == ["name", "n", "ok", "x"])
        #expect(rows.rows.count == 2)
        #expect(rows.rows[0].text(0) == "it's \"quoted\" ü\n'; DROP TABLE t; --")
        #expect(rows.rows[0].int(1) == Int64.min && rows.rows[0].bool(2) && rows.rows[0].double(3) == 0.25)
        #expect(rows.rows[1].text(0) == "" && rows.rows[1].optionalInt(1) == nil && !rows.rows[1].bool(2) && rows.rows[1].isNull(3))
        #expect(try db.execute("UPDATE t SET n = 1").affected == 2)
    }

    @Test func errorsCarryTheirSQLStateAndSayWhetherTheyMayPass() throws {
        let db = try PGConnection(uri: try postgres().createDatabase())
        try db.execute("CREATE TABLE t (name TEXT PRIMARY KEY CHECK (name <> ''))")
        try db.execute("INSERT INTO t VALUES ($1)", [.text("a")])
        #expect { try db.execute("INSERT INTO t VALUES ($1)", [.text("a")]) } throws: { error in
            let error = error as! PostgresError
            return error.sqlState == "23505" && error.isUniqueViolation && !error.mayPassLater
                && error.summary.contains("duplicate key") && !error.summary.contains("INSERT") && "\(error)".contains("INSERT")
        }
        #expect { try db.execute("INSERT INTO t VALUES ('')") } throws: { ($0 as? PostgresError)?.sqlState == "23514" }
        #expect { try db.execute("SELEC 1") } throws: { ($0 as? PostgresError)?.sqlState == "42601" }
        #expect { try db.execute("SET statement_timeout = 50; SELECT pg_sleep(1)") } throws: { _ in true }
        try db.execute("SET statement_timeout = 50")
        #expect { try db.execute("SELECT pg_sleep(1)") } throws: { error in
            (error as? PostgresError)?.sqlState == "57014" && (error as? PostgresError)?.mayPassLater == true
        }
        // The connection is still good after each error.
        #expect(try db.execute("SELECT count(*) FROM t").rows.first?.int(0) == 1)
        #expect { try PGConnection(uri: "postgresql://rollgate@127.0.0.1:1/none?connect_timeout=2") } throws: { error in
            let error = error as! PostgresError
            return error.sqlState == nil && error.mayPassLater && error.message.hasPrefix("cannot connect")
        }
    }

    @Test func aTransactionCommitsWholeOrNotAtAll() throws {
        let db = try PGConnection(uri: try postgres().createDatabase())
        try db.execute("CREATE TABLE t (n BIGINT UNIQUE)")
        _ = try db.transaction { try $0.execute("INSERT INTO t VALUES (1), (2)") }
        #expect { try db.transaction { db in
            try db.execute("INSERT INTO t VALUES (3)")
            try db.execute("INSERT INTO t VALUES (1)")
        } } throws: { ($0 as? PostgresError)?.isUniqueViolation == true }
        #expect(try db.execute("SELECT n FROM t ORDER BY n").rows.map { $0.int(0) } == [1, 2])
    }

    @Test func notificationsArriveOnAListeningConnection() throws {
        let uri = try postgres().createDatabase()
        let listener = try PGConnection(uri: uri), sender = try PGConnection(uri: uri)
        try listener.listen("run events")
        #expect(try listener.notifications(waitingUpTo: .milliseconds(50)).isEmpty)
        try sender.execute("SELECT pg_notify($1, $2)", [.text("run events"), .text("42")])
        try sender.execute("SELECT pg_notify($1, $2)", [.text("other"), .text("x")])
        var received: [PGNotification] = []
        let deadline = Date().addingTimeInterval(5)
        while received.isEmpty && Date() < deadline { received += try listener.notifications(waitingUpTo: .milliseconds(200)) }
        #expect(received.map(\.channel) == ["run events"] && received.map(\.payload) == ["42"])
        #expect(received.first?.senderPID == sender.backendPID)
    }

    /// A server restart mid-use: the next statement fails with an error that may pass (a
    /// connection failure, not a bug), and a new connection works once the server is back.
    @Test func aRestartedServerIsAnErrorThatPassesOnceConnectedAgain() throws {
        let server = try PostgresServer()
        defer { server.remove() }
        let db = try PGConnection(uri: server.uri())
        #expect(try db.execute("SELECT 1").rows.first?.int(0) == 1)
        server.stop()
        #expect { try db.execute("SELECT 1") } throws: { error in
            let error = error as! PostgresError
            return error.mayPassLater && (error.sqlState?.hasPrefix("08") == true || error.sqlState?.hasPrefix("57P") == true)
        }
        try server.start()
        try db.reconnect()
        #expect(try db.execute("SELECT 2").rows.first?.int(0) == 2)
    }
}
