@testable import Configuration
@testable import HTTPAPI
@testable import Hooks
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
import HTTPTesting
import RollgateServer
import RolloutTesting

/// The real binary killed and stopped at every moment of a roll: the same run resumes and
/// succeeds, every target ends in service, never two out at once, nothing twice.
@Suite(.serialized) struct CrashTests {
    let directory = TempDirectory()
    let token = "crash-test-token-0123456789"
    var environment: [String: String] { ["TEST_ROLLGATE_TOKEN": token] }
    var headers: [(String, String)] { [("Authorization", "Bearer \(token)")] }

    /// Two simulated targets; every phase takes a moment, so a kill can land in each.
    func config(_ name: String = "crash", targets: Int = 2, deploy: String? = nil, shutdownTimeout: String = "2s", drainSeconds: Double = 0.5,
                hookSeconds: Int = 1) -> String {
        let pidFile = directory.path + "/\(name)-hook.pid"
        // Each hook takes a second: wide enough for a poll to see it running on a loaded machine.
        let deployHook = deploy ?? #"echo "deploying $ROLLGATE_VERSION to $ROLLGATE_TARGET_ID attempt $ROLLGATE_ATTEMPT"; echo $$ > \#(pidFile); sleep \#(hookSeconds); echo deployed"#
        return directory.write("\(name).yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(directory.path)/\(name).db
            shutdown_timeout: \(shutdownTimeout)
            api_tokens: [{name: ops, token_env: TEST_ROLLGATE_TOKEN}]
            services:
              - name: web
                simulated: {targets: \(targets), drain_seconds: \(drainSeconds), healthy_seconds: 0.5}
                poll_interval: 100ms
                hooks:
                  prepare: sleep \(hookSeconds); echo "prepared $ROLLGATE_TARGET_ID"
                  deploy: '\(deployHook.replacingOccurrences(of: "'", with: "''"))'
                  verify: sleep \(hookSeconds); echo "verified $ROLLGATE_TARGET_ID"
            """)
    }

    func deploy(_ client: HTTPClient, _ version: String) async throws -> Int64 {
        let response = try await client.request("POST", "/api/v1/deploys", headers: headers, body: Array(#"{"service":"web","version":"\#(version)"}"#.utf8))
        return try #require(json(response)["id"]?.int, "\(String(decoding: response.body, as: UTF8.self))")
    }

    /// Waits until the run's newest step is `phase` of `target`, still running.
    func waitFor(_ client: HTTPClient, run id: Int64, _ phase: String, of target: String) async throws {
        let reached = try await eventually(within: .seconds(30)) {
            let step = json(try await client.request("GET", "/api/v1/runs/\(id)"))["steps"]?.array?.last
            return step?["phase"] == .string(phase) && step?["target_id"] == .string(target) && step?["status"] == .string("running")
        }
        #expect(reached, "run \(id) never reached \(phase) of \(target)")
    }

    /// Every target healthy and none left out; no two out at once; none rolled twice in a run.
    func expectWholeFleet(_ client: HTTPClient, runs expected: Int? = nil) async throws {
        let service = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first
        let states = (service?["targets"]?.array ?? []).map { "\($0["id"]?.string ?? ""): \($0["state"]?.string ?? "")" }
        #expect((service?["targets"]?.array ?? []).allSatisfy { $0["state"] == .string("healthy") }, "\(states)")
        #expect(service?["left_out"]?.int == 0)
        let history = try await FleetHistory.read(client)
        #expect(history.overlaps.isEmpty, "two targets out at once: \(history.overlaps)")
        #expect(history.targetsRolledTwice.isEmpty, "\(history.targetsRolledTwice)")
        if let expected { #expect(history.runs.count == expected, "one run in the history, not a second one") }
    }

    @Test(arguments: ["prepare", "drain", "deploy", "verify", "restore"])
    func killNineDuringAPhaseResumesTheSameRun(_ phase: String) async throws {
        // A drain long enough that the kill lands in it on a loaded machine too.
        let config = config("kill-\(phase)", drainSeconds: phase == "drain" ? 3 : 0.5,
                            hookSeconds: ["prepare", "deploy", "verify"].contains(phase) ? 3 : 1)
        var server = try RollgateProcess(["serve", "--config", config], environment: environment)
        var client = HTTPClient(port: try await server.port())
        let id = try await deploy(client, "v2")
        try await waitFor(client, run: id, phase, of: "web-2")   // web-1 is done by then: it must not be rolled again
        let linesBefore = json(try await client.request("GET", "/api/v1/runs/\(id)/logs"))["lines"]?.array?.count ?? 0
        let hookPID = phase == "deploy" ? Int32((try? String(contentsOfFile: directory.path + "/kill-deploy-hook.pid", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") : nil
        server.kill(SIGKILL)

        server = try RollgateProcess(["serve", "--config", config], environment: environment)
        client = HTTPClient(port: try await server.port())
        let run = try await finished(client, run: id)
        #expect(run["status"] == .string("succeeded"), "\(run["error"]?.string ?? "")")
        #expect(run["interruptions"]?.int == 0, "reset once a target was done")
        let lines = (json(try await client.request("GET", "/api/v1/runs/\(id)/logs?limit=5000"))["lines"]?.array ?? []).compactMap { $0["text"]?.string }
        #expect(lines.count > linesBefore, "lines from before the kill are kept")
        #expect(lines.contains { $0.hasPrefix("interrupted: rollgate stopped during \(phase) of web-2") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("resumed after an interruption during \(phase) of web-2: the load balancer says") }, "\(lines)")
        #expect(lines.contains("all 2 target(s) run v2 and are healthy"))
        if phase == "deploy" {
            #expect(lines.contains("deploying v2 to web-2 attempt 2"), "the interrupted hook ran again, told it is attempt 2")
            if let hookPID {
                #expect(try await eventually(within: .seconds(5)) { Foundation.kill(hookPID, 0) != 0 }, "the dead process's hook was killed")
            }
        }
        #expect(!lines.contains("deploying v2 to web-1 attempt 2"), "web-1 was done before the kill: not rolled again")
        try await expectWholeFleet(client, runs: 1)
        server.kill(SIGTERM)
    }

    @Test func sigtermDuringAHookThatIgnoresTermExitsInTimeAndTheNextStartResumes() async throws {
        let config = config("term-hook", deploy: #"echo "attempt $ROLLGATE_ATTEMPT"; if [ "$ROLLGATE_ATTEMPT" = 1 ] && [ "$ROLLGATE_TARGET_ID" = web-1 ]; then trap '' TERM; while :; do sleep 0.1; done; fi"#,
                            shutdownTimeout: "1s")
        var server = try RollgateProcess(["serve", "--config", config], environment: environment)
        var client = HTTPClient(port: try await server.port())
        let id = try await deploy(client, "v3")
        try await waitFor(client, run: id, "deploy", of: "web-1")
        let started = ContinuousClock.now
        server.kill(SIGTERM)
        let took = ContinuousClock.now - started
        #expect(server.process.terminationStatus == 0, "a clean stop: \(server.text)")
        // shutdown_timeout 1s + the 3s kill grace; the bound only tells "escalated" from "waited for a
        // hook that never ends", wide enough for a loaded machine.
        #expect(took < .seconds(30), "the hook ignoring TERM was killed after the grace, took \(took)")
        // The last lines may still be on their way through the pipe when the exit is seen.
        #expect(try await eventually(within: .seconds(10)) { server.text.contains("stopped cleanly; runs in hand resume at the next start") })
        // The write-ahead log was moved into the database: a copy of the .db file alone has it all.
        let copy = directory.path + "/term-copy.db"
        try FileManager.default.copyItem(atPath: directory.path + "/term-hook.db", toPath: copy)
        let counted = try await RollgateProcess.sqlite(copy, "SELECT status, (SELECT COUNT(*) FROM log_lines WHERE run_id = \(id)) FROM runs WHERE id = \(id)")
        #expect(counted.hasPrefix("running|"), "the run waits to be resumed: \(counted)")
        #expect((Int(counted.split(separator: "|").last ?? "") ?? 0) > 5)

        server = try RollgateProcess(["serve", "--config", config], environment: environment)
        client = HTTPClient(port: try await server.port())
        let run = try await finished(client, run: id)
        #expect(run["status"] == .string("succeeded"), "\(run["error"]?.string ?? "")")
        let lines = (json(try await client.request("GET", "/api/v1/runs/\(id)/logs"))["lines"]?.array ?? []).compactMap { $0["text"]?.string }
        #expect(lines.contains("attempt 2"))
        #expect(lines.contains { $0.hasPrefix("stopped at a safe point (rollgate is shutting down)") })
        try await expectWholeFleet(client, runs: 1)
        server.kill(SIGTERM)
    }

    @Test func aSecondSignalExitsAtOnceAndTheNextStartResumes() async throws {
        let config = config("second", deploy: #"if [ "$ROLLGATE_ATTEMPT" = 1 ] && [ "$ROLLGATE_TARGET_ID" = web-1 ]; then trap '' TERM; while :; do sleep 0.1; done; fi; echo "attempt $ROLLGATE_ATTEMPT""#,
                            shutdownTimeout: "60s")
        var server = try RollgateProcess(["serve", "--config", config], environment: environment)
        var client = HTTPClient(port: try await server.port())
        let id = try await deploy(client, "v6")
        try await waitFor(client, run: id, "deploy", of: "web-1")
        let started = ContinuousClock.now
        Foundation.kill(server.process.processIdentifier, SIGTERM)
        try await Task.sleep(for: .milliseconds(300))
        server.kill(SIGINT)
        #expect(ContinuousClock.now - started < .seconds(30), "not the 60s shutdown_timeout")
        #expect(server.process.terminationStatus == 1)
        #expect(try await eventually(within: .seconds(5)) { server.text.contains("second signal, exiting now; runs in hand resume at the next start") },
                "\(server.text)")
        server = try RollgateProcess(["serve", "--config", config], environment: environment)
        client = HTTPClient(port: try await server.port())
        #expect(try await finished(client, run: id)["status"] == .string("succeeded"))
        try await expectWholeFleet(client, runs: 1)
        server.kill(SIGTERM)
    }

    @Test func sigtermDuringADrainLeavesTheWaitAtOnceAndTheNextStartResumes() async throws {
        let config = config("term-drain")
        var server = try RollgateProcess(["serve", "--config", config], environment: environment)
        var client = HTTPClient(port: try await server.port())
        let id = try await deploy(client, "v4")
        try await waitFor(client, run: id, "drain", of: "web-1")
        server.kill(SIGTERM)
        #expect(server.process.terminationStatus == 0)
        #expect(try await eventually(within: .seconds(10)) { server.text.contains("stopped at a safe point (rollgate is shutting down)") },
                "the drain wait was left, not waited out: \(server.text)")
        server = try RollgateProcess(["serve", "--config", config], environment: environment)
        client = HTTPClient(port: try await server.port())
        #expect(try await finished(client, run: id)["status"] == .string("succeeded"))
        try await expectWholeFleet(client, runs: 1)
        server.kill(SIGTERM)
    }

    @Test func aSecondServerOnTheSameDatabaseRefusesToStartNamingTheFirst() async throws {
        let config = config("two")
        let first = try RollgateProcess(["serve", "--config", config], environment: environment)
        let client = HTTPClient(port: try await first.port())
        let id = try await deploy(client, "v5")
        try await waitFor(client, run: id, "deploy", of: "web-1")
        let (status, output) = try await RollgateProcess.run(["serve", "--config", config], environment: environment)
        #expect(status != 0)
        #expect(output.contains("is served by process \(first.process.processIdentifier) on "), "\(output)")
        #expect(output.contains("two servers on one database would run runs twice"))
        #expect(try await finished(client, run: id)["status"] == .string("succeeded"), "the first one's run was not disturbed")
        try await expectWholeFleet(client, runs: 1)
        first.kill(SIGTERM)
        // Once the first has stopped, a new server starts on the database at once.
        let next = try RollgateProcess(["serve", "--config", config], environment: environment)
        _ = try await next.port()
        next.kill(SIGTERM)
    }

    /// Kills at random moments of rolls of 3 targets; after every restart and at the end,
    /// the invariants hold. ROLLGATE_SOAK_KILLS sets how many (default 15), ROLLGATE_SOAK_SEED
    /// the seed (printed on failure).
    @Test func aSeededCrashSoakKeepsEveryInvariant() async throws {
        let kills = Int(ProcessInfo.processInfo.environment["ROLLGATE_SOAK_KILLS"] ?? "") ?? 15
        let seed = UInt64(ProcessInfo.processInfo.environment["ROLLGATE_SOAK_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        var random = SeededRandom(seed: seed)
        let config = config("soak", targets: 3)
        var version = 0
        for kill in 1...kills {
            let server = try RollgateProcess(["serve", "--config", config], environment: environment)
            let client = HTTPClient(port: try await server.port())
            let history = try await FleetHistory.read(client)
            #expect(history.overlaps.isEmpty, "seed \(seed), after restart \(kill): \(history.overlaps)")
            #expect(history.targetsRolledTwice.isEmpty, "seed \(seed), after restart \(kill): \(history.targetsRolledTwice)")
            if !history.runs.contains(where: { ["queued", "running"].contains($0["status"]?.string ?? "") }) {
                version += 1
                _ = try await deploy(client, "s\(version)")
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 100...2500, using: &random)))
            server.kill(SIGKILL)
        }
        // No more kills: what is in hand finishes, and one more deploy leaves the fleet whole.
        let server = try RollgateProcess(["serve", "--config", config], environment: environment)
        let client = HTTPClient(port: try await server.port())
        version += 1
        let last = try await deploy(client, "s\(version)")
        let run = try await finished(client, run: last)
        #expect(run["status"] == .string("succeeded"), "seed \(seed): \(run["error"]?.string ?? "")")
        let history = try await FleetHistory.read(client)
        for earlier in history.runs {
            #expect(!["queued", "running"].contains(earlier["status"]?.string ?? ""), "seed \(seed): run \(earlier["id"]?.int ?? 0) unfinished")
            if earlier["status"] == .string("failed") {
                #expect(earlier["error"]?.string?.hasPrefix("interrupted") == true, "seed \(seed): only a crash loop fails a run here: \(earlier.text)")
            }
        }
        #expect(history.overlaps.isEmpty, "seed \(seed): \(history.overlaps)")
        try await expectWholeFleet(client)
        server.kill(SIGTERM)
    }
}

extension RollgateProcess {
    /// One query through Python's sqlite3 (another process, as an operator's tool would be).
    static func sqlite(_ database: String, _ query: String) async throws -> String {
        try await runToEnd("/usr/bin/env", ["python3", "-c", """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            for row in db.execute(sys.argv[2]): print("|".join(str(v) for v in row))
            """, database, query], keepStandardError: false).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
