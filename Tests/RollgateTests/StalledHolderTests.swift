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

/// A holder that stalls past its lease (SIGSTOP) while a second process takes its run over,
/// then continues (SIGCONT): two real processes on one database. The first must do nothing
/// more for that run: no hook, no load-balancer change, no notification, no write; it exits.
@Suite(.serialized) struct StalledHolderTests {
    let directory = TempDirectory()
    let token = "stalled-test-token-0123456789"
    var environment: [String: String] { ["TEST_ROLLGATE_TOKEN": token, "NOTIFY_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }
    var headers: [(String, String)] { [("Authorization", "Bearer \(token)")] }

    /// Each hook appends "phase target attempt rollgate-pid" to one file both processes share.
    func config(sink: UInt16) -> String {
        let hooks = directory.path + "/hooks.log"
        return directory.write("stalled.yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(directory.path)/stalled.db
            lease: 3s
            shutdown_timeout: 2s
            notifications: {retry_first: 200ms, retry_max: 1s}
            api_tokens: [{name: ops, token_env: TEST_ROLLGATE_TOKEN}]
            services:
              - name: web
                simulated: {targets: 2, drain_seconds: 4, healthy_seconds: 0.5}
                poll_interval: 100ms
                notify:
                  webhook: {url: "http://127.0.0.1:\(sink)/rollgate", secret_env: NOTIFY_SECRET}
                hooks:
                  prepare: echo "prepare $ROLLGATE_TARGET_ID $ROLLGATE_ATTEMPT $PPID" >> \(hooks)
                  deploy: echo "deploy $ROLLGATE_TARGET_ID $ROLLGATE_ATTEMPT $PPID" >> \(hooks); sleep 0.3
                  verify: echo "verify $ROLLGATE_TARGET_ID $ROLLGATE_ATTEMPT $PPID" >> \(hooks)
            """)
    }

    var hookLines: [String] {
        ((try? String(contentsOfFile: directory.path + "/hooks.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func aHolderStoppedPastItsLeaseDoesNothingMoreOnceItContinues() async throws {
        let sink = try await WebhookSink(directory: directory)
        defer { sink.stop() }
        let config = config(sink: sink.port)
        let first = try RollgateProcess(["serve", "--config", config], environment: environment)
        let firstClient = HTTPClient(port: try await first.port())
        let response = try await firstClient.request("POST", "/api/v1/deploys", headers: headers, body: Array(#"{"service":"web","version":"v2"}"#.utf8))
        let id = try #require(json(response)["id"]?.int, "\(String(decoding: response.body, as: UTF8.self))")
        // Mid-drain of web-1: the first process took it out and waits for the load balancer.
        let draining = try await eventually(within: .seconds(30)) {
            let step = json(try await firstClient.request("GET", "/api/v1/runs/\(id)"))["steps"]?.array?.last
            return step?["phase"] == .string("drain") && step?["status"] == .string("running")
        }
        #expect(draining)
        // Nothing in flight to the sink when it stalls: a delivery sent but not yet marked is
        // sent again by the next holder, at least once by design (the receiver deduplicates by
        // webhook-id); what this test forbids is a send after the holder continues.
        let outboxQuiet = try await eventually(within: .seconds(10)) {
            let deliveries = json(try await firstClient.request("GET", "/api/v1/runs/\(id)/deliveries"))["deliveries"]?.array ?? []
            return !deliveries.isEmpty && deliveries.allSatisfy { $0["status"] == .string("delivered") }
        }
        #expect(outboxQuiet)
        Foundation.kill(first.process.processIdentifier, SIGSTOP)   // kill() would wait for an exit
        let firstPID = first.process.processIdentifier
        let linesOfFirst = hookLines.filter { $0.hasSuffix(" \(firstPID)") }

        // A second server starts once the first's hold on the database has expired, takes the
        // run over once its lease has, and rolls it to the end.
        var second: RollgateProcess?
        for _ in 0..<30 where second == nil {
            let candidate = try RollgateProcess(["serve", "--config", config], environment: environment)
            if (try? await candidate.port()) != nil { second = candidate } else { try await Task.sleep(for: .seconds(1)) }
        }
        let server = try #require(second, "the second server never got the database")
        defer { server.kill(SIGTERM) }
        let client = HTTPClient(port: try await server.port())
        let run = try await finished(client, run: id)
        #expect(run["status"] == .string("succeeded"), "\(run["error"]?.string ?? "")")

        // The first continues: it learns it lost the database and exits without acting.
        let outputBefore = first.text.count
        Foundation.kill(first.process.processIdentifier, SIGCONT)
        let exited = try await eventually(within: .seconds(30)) { !first.process.isRunning }
        #expect(exited, "the stale holder goes on running")
        if exited { #expect(first.process.terminationStatus == 1) }
        // Its last lines may still be on their way through the pipe.
        #expect(try await eventually(within: .seconds(10)) { first.text.dropFirst(outputBefore).contains("another rollgate took this database over") })
        try await Task.sleep(for: .milliseconds(200))
        let after = String(first.text.dropFirst(outputBefore))
        for action in ["DeregisterTargets", "RegisterTargets", "hook:", "hook (attempt"] {
            #expect(!after.contains(action), "the stale holder acted (\(action)) after it continued: \(after)")
        }
        #expect(hookLines.filter { $0.hasSuffix(" \(firstPID)") } == linesOfFirst, "the stale holder started a hook after it continued")

        // Every hook ran at most once per attempt; the run ended once, and nothing of the first
        // process reached it after the takeover.
        let attempts = hookLines.map { $0.split(separator: " ").prefix(3).joined(separator: " ") }
        #expect(Set(attempts).count == attempts.count, "a hook ran twice in one attempt: \(hookLines)")
        #expect(hookLines.contains { $0.hasPrefix("deploy web-1 ") } && hookLines.contains { $0.hasPrefix("deploy web-2 ") })
        let lines = json(try await client.request("GET", "/api/v1/runs/\(id)/logs"))["lines"]?.array?.compactMap { $0["text"]?.string } ?? []
        #expect(!lines.contains { $0.contains("stopped at a safe point") }, "the stale holder wrote into the run it lost")
        #expect(try await eventually(within: .seconds(15)) { sink.received.contains { $0.type == "run.succeeded" } })
        let received = sink.received
        #expect(Set(received.map(\.id)).count == received.count, "a notification went twice: \(received.map(\.type))")
        #expect(received.filter { $0.type == "run.succeeded" }.count == 1)
        let fleet = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first
        #expect(fleet?["left_out"]?.int == 0)
        #expect((fleet?["targets"]?.array ?? []).allSatisfy { $0["state"] == .string("healthy") }, "\(fleet?["targets"] ?? .null)")
    }
}
