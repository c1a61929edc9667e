@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
import HTTPTesting
import RollgateServer

/// The database fails under a running roll (its write lock held elsewhere, the disk full, the
/// file system read-only): the roll pauses, /healthz says so, no acknowledged line is lost,
/// no target is left out, and the run ends once writes succeed, without a restart.
@Suite(.serialized) struct DatabaseFaultTests {
    let directory = TempDirectory()
    let token = "fault-test-token-0123456789"
    var headers: [(String, String)] { [("Authorization", "Bearer \(token)")] }
    static let lines = 300

    /// The deploy hook on web-1 prints numbered lines for a few seconds: the fault lands while
    /// it writes.
    func config(database: String) -> String {
        directory.write("fault.yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(database)
            # Faults of up to 30 s stay inside the acting window (two thirds of the lease): the
            # roll pauses. A longer one stops the roll at its deadline (LocalDeadlineTests).
            lease: 60s
            api_tokens: [{name: ops, token_env: TEST_ROLLGATE_TOKEN}]
            services:
              - name: web
                simulated: {targets: 2, drain_seconds: 0.3, healthy_seconds: 0.3}
                poll_interval: 100ms
                hooks:
                  deploy: 'if [ "$ROLLGATE_TARGET_ID" = web-1 ]; then i=1; while [ $i -le \(Self.lines) ]; do echo "line $i"; i=$((i+1)); sleep 0.01; done; fi; echo "deployed $ROLLGATE_TARGET_ID"'
            """)
    }

    /// Starts a roll and returns once web-1's deploy hook is printing.
    func startRoll(database: String) async throws -> (RollgateProcess, HTTPClient) {
        let server = try RollgateProcess(["serve", "--config", config(database: database)], environment: ["TEST_ROLLGATE_TOKEN": token])
        let client = HTTPClient(port: try await server.port())
        let accepted = try await client.request("POST", "/api/v1/deploys", headers: headers, body: Array(#"{"service":"web","version":"v1"}"#.utf8))
        #expect(accepted.status == 202)
        #expect(try await eventually {
            (json(try await client.request("GET", "/api/v1/runs/1/logs"))["lines"]?.array ?? []).contains { $0["text"] == .string("line 5") }
        })
        return (server, client)
    }

    func healthz(_ client: HTTPClient) async throws -> JSONValue { json(try await client.request("GET", "/healthz")) }

    /// After the fault: the run succeeded, every line is there once and in order, no target is
    /// out, the database is writable again, and the service takes the next deploy.
    func expectRecovered(_ client: HTTPClient, lines: Bool = true) async throws {
        var run = JSONValue.null
        #expect(try await eventually(within: .seconds(90)) {
            run = json(try await client.request("GET", "/api/v1/runs/1"))
            return run["status"] != .string("running")
        })
        #expect(run["status"] == .string("succeeded"), "\(run.text)")
        let texts = (json(try await client.request("GET", "/api/v1/runs/1/logs?limit=5000"))["lines"]?.array ?? []).compactMap { $0["text"]?.string }
        let numbered = texts.filter { $0.hasPrefix("line ") }
        if lines {
            #expect(numbered == (1...Self.lines).map { "line \($0)" }, "every line, once, in order (\(numbered.count) of \(Self.lines))")
        } else {
            // A kill -9 loses the lines the hook printed after the last one stored; the ones
            // stored are in order, and the hook ran again from the start.
            #expect(numbered.filter { $0 == "line 1" }.count == 2)
        }
        let service = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first
        #expect(service?["left_out"]?.int == 0)
        #expect((service?["targets"]?.array ?? []).allSatisfy { $0["state"] == .string("healthy") })
        #expect(try await eventually(within: .seconds(15)) { try await healthz(client)["status"] == .string("ok") })
        let next = try await client.request("POST", "/api/v1/deploys", headers: headers, body: Array(#"{"service":"web","version":"v2"}"#.utf8))
        #expect(next.status == 202, "the service is not blocked")
        #expect(try await eventually(within: .seconds(30)) {
            json(try await client.request("GET", "/api/v1/runs/2"))["status"] == .string("succeeded")
        })
    }

    @Test func theWriteLockHeldElsewhereFor30sPausesTheRollAndLosesNothing() async throws {
        let database = directory.path + "/locked.db"
        let (server, client) = try await startRoll(database: database)
        let holder = try LockHolder(database: database, seconds: 30)
        #expect(try await eventually(within: .seconds(20)) { try await healthz(client)["status"] == .string("degraded") },
                "/healthz says the database is not writable")
        let degraded = try await healthz(client)
        #expect(degraded["database"] == .string("not writable"))
        #expect(degraded["error"]?.string?.contains("locked") == true, "\(degraded.text)")
        let metrics = String(decoding: try await client.request("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("rollgate_database_writable 0"))
        try await offPool { holder.wait() }
        try await expectRecovered(client)
        server.kill(SIGTERM)
    }

    @Test func aFullDiskPausesTheRollUntilSpaceComesBack() async throws {
        let mount = try TmpfsMount(at: directory.path + "/small", megabytes: 8)
        defer { mount.unmount() }
        let (server, client) = try await startRoll(database: mount.path + "/rollgate.db")
        let filler = mount.path + "/filler"
        mount.fill(filler)
        #expect(try await eventually(within: .seconds(20)) { try await healthz(client)["status"] == .string("degraded") })
        let degraded = try await healthz(client)
        #expect(degraded["error"]?.string?.contains("full") == true, "\(degraded.text)")
        try await Task.sleep(for: .seconds(2))
        try FileManager.default.removeItem(atPath: filler)
        try await expectRecovered(client)
        server.kill(SIGTERM)
    }

    /// A file system cannot be made read-only under open files (EBUSY); a read-only database
    /// is met at a start: after a kill -9 left a target out, the next start refuses with the
    /// reason, touching nothing, and once writable again resumes the run.
    @Test func aReadOnlyDatabaseIsRefusedAtStartAndTheRunResumesOnceWritable() async throws {
        let mount = try TmpfsMount(at: directory.path + "/ro", megabytes: 16)
        defer { mount.unmount() }
        let database = mount.path + "/rollgate.db"
        let (server, _) = try await startRoll(database: database)
        server.kill(SIGKILL)   // web-1 is out of the load balancer, recorded so
        try mount.remount(readOnly: true)
        let (status, output) = try await RollgateProcess.run(["serve", "--config", config(database: database)],
                                                             environment: ["TEST_ROLLGATE_TOKEN": token])
        #expect(status != 0)
        #expect(output.contains("the database \(database) cannot be written"), "\(output)")
        #expect(output.contains("nothing was started"))
        try mount.remount(readOnly: false)
        let again = try RollgateProcess(["serve", "--config", config(database: database)], environment: ["TEST_ROLLGATE_TOKEN": token])
        let client = HTTPClient(port: try await again.port())
        try await expectRecovered(client, lines: false)
        again.kill(SIGTERM)
    }
}

/// Another process holding the database's write lock (BEGIN IMMEDIATE) for a while.
final class LockHolder: @unchecked Sendable {
    // @unchecked: `process` is set up in init and only waited on after.
    let process = Process()

    init(database: String, seconds: Int) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", """
            import sqlite3, sys, time
            db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
            db.execute("BEGIN IMMEDIATE")
            print("locked", flush=True)
            time.sleep(float(sys.argv[2]))
            db.execute("ROLLBACK")
            """, database, "\(seconds)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let first = pipe.fileHandleForReading.availableData
        guard String(decoding: first, as: UTF8.self).contains("locked") else { throw TestFailure("the lock holder did not take the lock") }
    }

    func wait() { process.waitUntilExit() }
}

/// A small tmpfs the test mounts (rollgate's tests run as root on CI; `sudo -n` otherwise).
struct TmpfsMount {
    let path: String

    init(at path: String, megabytes: Int) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try TmpfsMount.mount(["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
    }

    func remount(readOnly: Bool) throws {
        try TmpfsMount.mount(["-o", readOnly ? "remount,ro" : "remount,rw", path])
    }

    /// Writes zeros until the file system is full.
    func fill(_ file: String) {
        #expect(FileManager.default.createFile(atPath: file, contents: nil))
        guard let handle = FileHandle(forWritingAtPath: file) else { return }
        let chunk = Data(count: 64 << 10)
        while (try? handle.write(contentsOf: chunk)) != nil {}
        try? handle.close()
    }

    func unmount() {
        _ = try? TmpfsMount.mount([path], command: "umount")
    }

    static func mount(_ arguments: [String], command: String = "mount") throws {
        let process = Process()
        let root = getuid() == 0
        process.executableURL = URL(fileURLWithPath: root ? "/bin/\(command)" : "/usr/bin/sudo")
        process.arguments = root ? arguments : ["-n", command] + arguments
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestFailure("\(command) \(arguments.joined(separator: " ")) failed: these tests need root (or sudo without a password) to mount a small tmpfs")
        }
    }
}
