import Foundation
import Testing
import MicroHTTP
import Rollgate

/// The built `rollgate` executable, run as a user would.
let rollgateBinary = repositoryRoot + "/.build/debug/rollgate"

/// A `rollgate` process with its output collected.
final class RollgateProcess: @unchecked Sendable {
    // @unchecked: `output` is only touched under `lock`.
    let process = Process()
    private let lock = NSLock()
    private var output = Data()

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        guard FileManager.default.isExecutableFile(atPath: rollgateBinary) else {
            throw TestFailure( "\(rollgateBinary) is missing: run `swift build` first (make test does)")
        }
        process.executableURL = URL(fileURLWithPath: rollgateBinary)
        process.arguments = arguments
        process.environment = ["PATH": "/usr/bin:/bin", "ROLLGATE_MIGRATIONS": migrationsDirectory,
                               "ROLLGATE_PUBLIC_DIR": publicDirectory].merging(environment) { _, new in new }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.lock(); self.output.append(data); self.lock.unlock()
        }
        try process.run()
    }

    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: output, as: UTF8.self) }

    /// Runs to the end and returns (exit status, output).
    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (Int32, String) {
        let child = try RollgateProcess(arguments, environment: environment)
        _ = try await eventually(within: .seconds(60)) { !child.process.isRunning }
        child.process.waitUntilExit()
        try await Task.sleep(for: .milliseconds(50))   // let the last output arrive
        return (child.process.terminationStatus, child.text)
    }

    /// The port from "listening on http://127.0.0.1:PORT/".
    func port() async throws -> UInt16 {
        var found: UInt16?
        _ = try await eventually(within: .seconds(30)) {
            guard let range = text.range(of: #"listening on http://127\.0\.0\.1:(\d+)/"#, options: .regularExpression) else {
                return !process.isRunning
            }
            found = UInt16(text[range].split(separator: ":").last!.dropLast())
            return true
        }
        guard let found else { throw TestFailure( "rollgate did not start: \(text)") }
        return found
    }

    func kill(_ signal: Int32) {
        Foundation.kill(process.processIdentifier, signal)
        process.waitUntilExit()
    }
}

@Suite(.serialized) struct BinaryTests {
    let directory = TempDirectory()
    let token = "binary-test-token-0123456789"

    var config: String {
        directory.write("rollgate.yaml", """
            listen: 127.0.0.1:0
            database: \(directory.path)/rollgate.db
            api_tokens:
              - {name: ops, token_env: TEST_ROLLGATE_TOKEN}
            services:
              - name: web
                simulated: {targets: 3, drain_seconds: 1.5, healthy_seconds: 0.3}
                poll_interval: 100ms
                hooks:
                  deploy: echo "installing $ROLLGATE_VERSION on $ROLLGATE_TARGET_ID"
            """)
    }

    @Test func checkConfigNamesTheBadKeyAndLine() async throws {
        let bad = directory.write("bad.yaml", "services:\n  - name: web\n    simulated: {}\n    hooks: {deploy: x}\n    drain_timeout: soon\n")
        let (status, output) = try await RollgateProcess.run(["check-config", bad])
        #expect(status == 2)
        #expect(output.contains("services[0].drain_timeout (line 5): expected a duration like 500ms, 30s, 10m or 1h, got soon"))
        let (okStatus, okOutput) = try await RollgateProcess.run(["check-config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        #expect(okStatus == 0)
        #expect(okOutput.contains("OK, 1 service(s): web; 1 API token(s)"))
        #expect(!okOutput.contains(token), "secrets are never printed")
    }

    @Test func migrateCreatesTheSchemaOnceAndRefusesANewerDatabase() async throws {
        let database = directory.path + "/migrated.db"
        let first = try await RollgateProcess.run(["migrate", "--database", database])
        #expect(first.0 == 0)
        #expect(first.1.contains("applied 1, 2, 3, 4; now at schema version 4"))
        let second = try await RollgateProcess.run(["migrate", "--database", database])
        #expect(second.1.contains("is up to date at schema version 4"))
    }

    @Test func aPortInUseFailsBeforeAnyRunIsTouched() async throws {
        let first = try RollgateProcess(["serve", "--database", directory.path + "/one.db", "--listen", "127.0.0.1:0"])
        let port = try await first.port()
        let (status, output) = try await RollgateProcess.run(["serve", "--database", directory.path + "/two.db", "--listen", "127.0.0.1:\(port)"])
        #expect(status != 0)
        #expect(output.contains("cannot listen on 127.0.0.1:\(port)"))
        first.kill(SIGTERM)
    }

    @Test func theDemoRefusesToListenBeyondLoopback() async throws {
        let (status, output) = try await RollgateProcess.run(["serve", "--listen", "0.0.0.0:0", "--database", directory.path + "/demo.db"])
        #expect(status != 0)
        #expect(output.contains("listens on loopback only"))
    }

    @Test func killNineMidRollLosesNothingAndTheServiceIsNotBlocked() async throws {
        let environment = ["TEST_ROLLGATE_TOKEN": token]
        var server = try RollgateProcess(["serve", "--config", config], environment: environment)
        var client = HTTPClient(port: try await server.port())
        let headers = [("Authorization", "Bearer \(token)")]
        #expect(try await client.request("POST", "/api/v1/deploys", body: Array(#"{"service":"web","version":"v1"}"#.utf8)).status == 401)
        let accepted = try await client.request("POST", "/api/v1/deploys", headers: headers, body: Array(#"{"service":"web","version":"v1"}"#.utf8))
        #expect(accepted.status == 202)
        #expect(json(accepted)["requested_by"] == .string("api:ops"))
        // Wait until web-1 is draining, then kill -9.
        let draining = try await eventually {
            let run = json(try await client.request("GET", "/api/v1/runs/1"))
            return run["steps"]?.array?.last?["phase"] == .string("drain") && run["steps"]?.array?.last?["status"] == .string("running")
        }
        #expect(draining)
        server.kill(SIGKILL)

        server = try RollgateProcess(["serve", "--config", config], environment: environment)
        client = HTTPClient(port: try await server.port())
        let run = json(try await client.request("GET", "/api/v1/runs/1"))
        #expect(run["status"] == .string("failed"))
        let error = try #require(run["error"]?.string)
        #expect(error.contains("interrupted: rollgate stopped during drain of web-1"))
        #expect(error.contains("the load balancer now says web-1 is"))
        #expect(error.contains("out of service"), "the stranded target is named: \(error)")
        #expect(run["steps"]?.array?.last?["error"] == .string("interrupted"))

        // The service is free again: a deploy through the CLI rolls and --follow exits 0.
        let (status, output) = try await RollgateProcess.run(
            ["deploy", "web", "v2", "--follow", "--server", "http://127.0.0.1:\(client.port)", "--token", token])
        #expect(status == 0, "\(output)")
        #expect(output.contains("installing v2 on web-2"))
        #expect(output.contains("run 2 succeeded"))
        let (_, listing) = try await RollgateProcess.run(["runs", "--server", "http://127.0.0.1:\(client.port)"])
        #expect(listing.contains("2\tweb\tv2\tsucceeded"))
        #expect(listing.contains("1\tweb\tv1\tfailed"))

        server.kill(SIGTERM)
        #expect(server.process.terminationStatus == 0, "SIGTERM stops rollgate cleanly")
        #expect(!server.text.contains(token), "secrets never reach the log")
    }

    @Test func killNineDuringAHookKeepsItsOutputAndKillsTheLeftoverHook() async throws {
        let pidFile = directory.path + "/hook.pid"
        let hookConfig = directory.write("hook.yaml", """
            listen: 127.0.0.1:0
            database: \(directory.path)/hook.db
            api_tokens: [{name: ops, token_env: TEST_ROLLGATE_TOKEN}]
            services:
              - name: web
                simulated: {targets: 2, drain_seconds: 0.2, healthy_seconds: 0.2}
                poll_interval: 100ms
                hooks:
                  deploy: echo "halfway through $ROLLGATE_VERSION"; echo $$ > \(pidFile); sleep 60
            """)
        let environment = ["TEST_ROLLGATE_TOKEN": token]
        var server = try RollgateProcess(["serve", "--config", hookConfig], environment: environment)
        var client = HTTPClient(port: try await server.port())
        _ = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                     body: Array(#"{"service":"web","version":"v5"}"#.utf8))
        let printed = try await eventually {
            let lines = json(try await client.request("GET", "/api/v1/runs/1/logs"))["lines"]?.array ?? []
            return lines.contains { $0["text"] == .string("halfway through v5") } && FileManager.default.fileExists(atPath: pidFile)
        }
        #expect(printed)
        let hookPID = try #require(Int32(String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        server.kill(SIGKILL)
        #expect(Foundation.kill(hookPID, 0) == 0, "the hook outlives a kill -9 of rollgate")

        server = try RollgateProcess(["serve", "--config", hookConfig], environment: environment)
        client = HTTPClient(port: try await server.port())
        let run = json(try await client.request("GET", "/api/v1/runs/1"))
        #expect(run["status"] == .string("failed"))
        let error = run["error"]?.string ?? ""
        #expect(error.contains("during deploy of web-1"), "\(error)")
        #expect(error.contains("its deploy hook was still running"), "\(error)")
        #expect(try await eventually(within: .seconds(5)) { Foundation.kill(hookPID, 0) != 0 }, "the leftover hook was killed")
        let lines = json(try await client.request("GET", "/api/v1/runs/1/logs"))["lines"]?.array ?? []
        #expect(lines.contains { $0["text"] == .string("halfway through v5") && $0["stream"] == .string("stdout") },
                "a line printed before the crash is kept")
        server.kill(SIGTERM)
    }

    @Test func deployFollowExitsNonZeroWhenTheRunFails() async throws {
        let server = try RollgateProcess(["serve", "--config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        let port = try await server.port()
        let (status, output) = try await RollgateProcess.run(
            ["deploy", "web", "not a version", "--follow", "--server", "http://127.0.0.1:\(port)", "--token", token])
        #expect(status == 1)
        #expect(output.contains("HTTP 422: version must be"))
        let (unauthorized, hint) = try await RollgateProcess.run(["deploy", "web", "v3", "--server", "http://127.0.0.1:\(port)"])
        #expect(unauthorized == 1)
        #expect(hint.contains("HTTP 401") && hint.contains("--token"))
        server.kill(SIGTERM)
    }

    @Test func theStatusPageRendersAndUpdatesInHeadlessChromium() async throws {
        let server = try RollgateProcess(["serve", "--config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        let port = try await server.port()
        let client = HTTPClient(port: port)
        _ = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                     body: Array(#"{"service":"web","version":"v9"}"#.utf8))
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let browser = try #require(chromium, "Chromium is missing: make test installs it (apt-get install chromium)")
        let dump = Process()
        dump.executableURL = URL(fileURLWithPath: browser)
        dump.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--virtual-time-budget=3000", "--dump-dom", "http://127.0.0.1:\(port)/"]
        let pipe = Pipe()
        dump.standardOutput = pipe
        dump.standardError = FileHandle.nullDevice
        try dump.run()
        let dom = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        dump.waitUntilExit()
        #expect(dom.contains("live, updated"), "status.js ran and redrew the page")
        #expect(dom.contains("<table id=\"runs\">") && dom.contains(">v9<"))
        #expect(dom.contains("web-1"))
        server.kill(SIGTERM)
    }
}
