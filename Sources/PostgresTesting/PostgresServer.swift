import Foundation
import PostgresStore
#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL for the tests: `initdb` into a temporary directory, the server on a free
/// loopback port, stopped by its PID. PostgreSQL refuses to run as root, so when the tests
/// run as root both run as the `postgres` user (Debian's package makes it) through `setpriv`,
/// which execs (the PID is the server's own). A watcher stops the server when the test
/// process goes away without stopping it (a crash, a `kill -9` of the test runner), so no
/// cluster outlives its tests.
public final class PostgresServer: @unchecked Sendable {
    // @unchecked: the fields are set in init (the process replaced only by `start`, which the
    // owning test calls from one task).
    public let directory: String
    public let port: UInt16
    private var process: Process?
    private let binaries: String
    private let runAs: [String]
    /// `-c name=value` settings beyond the defaults (fsync off, loopback only).
    private let settings: [String]

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Sets up a cluster (initdb, superuser `rollgate`, trust on loopback) and starts it.
    /// `settings`: more `name=value` server settings (e.g. synchronous replication).
    public convenience init(settings: [String] = []) throws {
        try self.init(settings: settings, standbyOf: nil)
    }

    /// A streaming standby of `primary` (pg_basebackup -R): read-only until `promote`.
    public convenience init(standbyOf primary: PostgresServer) throws {
        try self.init(settings: [], standbyOf: primary)
    }

    private init(settings: [String], standbyOf primary: PostgresServer?) throws {
        self.settings = settings
        binaries = try PostgresServer.binaries()
        directory = NSTemporaryDirectory() + "rollgate-pg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 {
            guard let account = getpwnam("postgres") else {
                throw Failure(description: "tests run as root and there is no postgres user to run PostgreSQL as (make test installs Debian's postgresql)")
            }
            guard chown(directory, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
                throw Failure(description: "cannot hand \(directory) to the postgres user")
            }
            runAs = ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        } else {
            runAs = []
        }
        port = try PostgresServer.freePort()
        if let primary {
            let copy = try PostgresServer.run(runAs + [binaries + "/pg_basebackup", "-h", "127.0.0.1", "-p", "\(primary.port)", "-U", "rollgate",
                                                        "-D", directory + "/data", "-R", "-X", "stream", "--no-sync", "--checkpoint=fast"])
            guard copy.status == 0 else { throw Failure(description: "pg_basebackup failed (\(copy.status)): \(copy.output)") }
        } else {
            let initdb = try PostgresServer.run(runAs + [binaries + "/initdb", "-D", directory + "/data", "-U", "rollgate", "-A", "trust",
                                                          "-E", "UTF8", "--no-sync", "--no-instructions"])
            guard initdb.status == 0 else { throw Failure(description: "initdb failed (\(initdb.status)): \(initdb.output)") }
        }
        try start()
    }

    /// A standby becomes a primary (pg_ctl promote), waiting until it takes writes.
    public func promote() throws {
        let promoted = try PostgresServer.run(runAs + [binaries + "/pg_ctl", "promote", "-w", "-D", directory + "/data"])
        guard promoted.status == 0 else { throw Failure(description: "pg_ctl promote failed (\(promoted.status)): \(promoted.output)") }
    }

    deinit { stop() }

    /// A role that must give `password` (scram-sha-256) to connect, owning a new database;
    /// returns that database's URI without the password.
    public func databaseOwned(byRoleWithPassword role: String, password: String) throws -> String {
        let admin = try PGConnection(uri: uri())
        try admin.execute("CREATE ROLE " + PGConnection.identifier(role) + " LOGIN PASSWORD '" + password.replacingOccurrences(of: "'", with: "''") + "'")
        let name = "t_" + UUID().uuidString.prefix(12).lowercased().filter { $0.isLetter || $0.isNumber }
        try admin.execute("CREATE DATABASE " + PGConnection.identifier(name) + " OWNER " + PGConnection.identifier(role))
        let hba = directory + "/data/pg_hba.conf"
        let existing = (try? String(contentsOfFile: hba, encoding: .utf8)) ?? ""
        try ("host all \(role) 127.0.0.1/32 scram-sha-256\n" + existing).write(toFile: hba, atomically: false, encoding: .utf8)
        _ = try admin.execute("SELECT pg_reload_conf()")
        return "postgresql://\(role)@127.0.0.1:\(port)/\(name)?connect_timeout=5"
    }

    /// A URI for `database` on this server (no password: trust on loopback).
    public func uri(database: String = "postgres") -> String {
        "postgresql://rollgate@127.0.0.1:\(port)/\(database)?connect_timeout=5"
    }

    /// A new, empty database: each test gets its own on the one server.
    public func createDatabase() throws -> String {
        let name = "t_" + UUID().uuidString.prefix(12).lowercased().filter { $0.isLetter || $0.isNumber }
        let admin = try PGConnection(uri: uri())
        try admin.execute("CREATE DATABASE " + PGConnection.identifier(name))
        return uri(database: name)
    }

    /// Starts the server (again, after `stop` or `kill9`) and waits until it answers.
    public func start() throws {
        guard process == nil else { return }
        let log = directory + "/server.log"
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        if getuid() == 0, let account = getpwnam("postgres") { chown(log, account.pointee.pw_uid, account.pointee.pw_gid) }
        guard let output = FileHandle(forWritingAtPath: log) else { throw Failure(description: "cannot write \(log)") }
        output.seekToEndOfFile()
        let server = [binaries + "/postgres", "-D", directory + "/data", "-p", "\(port)", "-k", directory,
                      "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                      "-c", "full_page_writes=off", "-c", "max_connections=200"] + settings.flatMap { ["-c", $0] }
        // The server itself is the child (setpriv execs it): its PID is the one to stop.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: (runAs + server)[0])
        process.arguments = Array((runAs + server).dropFirst())
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try? output.close()
        self.process = process
        // A watcher apart from it: when this test process is gone without stopping the server
        // (a crash, a kill -9 of the runner, or a server shared by the whole run), it stops
        // the server and removes its files. Foreground sleeps only: a
        // shell's `wait` builtin can hang with the signal mask a test thread hands down.
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: "/bin/sh")
        watcher.arguments = ["-c", """
            while [ -d /proc/\(getpid()) ] && [ -d /proc/\(process.processIdentifier) ]; do sleep 1; done
            [ -d /proc/\(getpid()) ] && exit 0
            kill -INT \(process.processIdentifier) 2>/dev/null
            while [ -d /proc/\(process.processIdentifier) ]; do sleep 1; done
            rm -rf '\(directory)'
            """]
        watcher.standardInput = FileHandle.nullDevice
        watcher.standardOutput = FileHandle.nullDevice
        watcher.standardError = FileHandle.nullDevice
        try watcher.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if (try? PGConnection(uri: uri())) != nil { return }
            guard process.isRunning else { break }
            usleep(100_000)
        }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        stop()
        throw Failure(description: "PostgreSQL did not answer on 127.0.0.1:\(port) within 30 s: \(text.suffix(2000))")
    }

    /// The server's PID (the postmaster).
    public var serverPID: pid_t? { process?.processIdentifier }

    /// Fast shutdown (SIGINT: clients are disconnected, work is kept), waiting for it to end.
    public func stop() {
        guard let process else { return }
        if process.isRunning { kill(process.processIdentifier, SIGINT) }
        process.waitUntilExit()
        self.process = nil
    }

    /// The server dies at once (`kill -9` of the postmaster): what a crashed host looks like.
    public func kill9() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    /// Stops the server and removes its files.
    public func remove() {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: - Finding and running

    /// Where Debian's PostgreSQL server programs are (`pg_config --bindir`, else the newest
    /// `/usr/lib/postgresql/*/bin`).
    static func binaries() throws -> String {
        if let bindir = try? run(["/usr/bin/pg_config", "--bindir"]), bindir.status == 0 {
            let path = bindir.output.trimmingCharacters(in: .whitespacesAndNewlines)
            if FileManager.default.isExecutableFile(atPath: path + "/initdb") { return path }
        }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            let path = "/usr/lib/postgresql/\(version)/bin"
            if FileManager.default.isExecutableFile(atPath: path + "/initdb") { return path }
        }
        throw Failure(description: "no PostgreSQL server programs (initdb) found: make test installs Debian's postgresql")
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("pg-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer { try? FileManager.default.removeItem(at: output) }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try? handle.close()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        return (process.terminationStatus, text)
    }

    /// A loopback port nothing listens on now.
    static func freePort() throws -> UInt16 {
        for _ in 0..<200 {
            let port = UInt16.random(in: 30000...39999)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound == 0 { return port }
        }
        throw Failure(description: "no free loopback port in 30000-39999")
    }
}
