@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
import HTTPTesting
import RollgateServer
#if canImport(Glibc)
import Glibc
#endif

/// Server-Sent Events with the real binary: backlog then live lines, resume by Last-Event-ID,
/// the end of the stream at the run's end, and a client that leaves frees its slot.
@Suite(.serialized) struct StreamTests {
    let directory = TempDirectory()
    let token = "stream-test-token-0123456789"

    func server() async throws -> (RollgateProcess, HTTPClient) {
        let config = directory.write("streams.yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(directory.path)/streams.db
            api_tokens: [{name: ops, token_env: TEST_ROLLGATE_TOKEN}]
            services:
              - name: web
                simulated: {targets: 2, drain_seconds: 0.5, healthy_seconds: 0.5}
                poll_interval: 100ms
                hooks: {deploy: 'for i in 1 2 3 4 5; do echo "step $i on $ROLLGATE_TARGET_ID"; sleep 0.2; done'}
            """)
        let process = try RollgateProcess(["serve", "--config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        return (process, HTTPClient(port: try await process.port(), timeoutSeconds: 60))
    }

    /// (id, event, data) of each event in an SSE body.
    static func events(_ body: [UInt8]) -> [(id: Int64?, event: String, data: String)] {
        String(decoding: body, as: UTF8.self).components(separatedBy: "\n\n").compactMap { block in
            var id: Int64?, event = "message", data = ""
            for line in block.split(separator: "\n") {
                if line.hasPrefix("id: ") { id = Int64(line.dropFirst(4)) }
                if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
            }
            return data.isEmpty ? nil : (id, event, data)
        }
    }

    @Test func theLogStreamsLiveAndResumesWithoutGapsOrRepeats() async throws {
        let (process, client) = try await server()
        _ = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                     body: Array(#"{"service":"web","version":"v1"}"#.utf8))
        #expect(try await eventually { json(try await client.request("GET", "/api/v1/runs/1"))["status"] == .string("running") })
        // Opened mid-run: the backlog, then lines as they are written, until the run ends.
        let streamed = try await client.request("GET", "/api/v1/runs/1/logs", headers: [("Accept", "text/event-stream")])
        #expect(streamed.status == 200)
        #expect(streamed.header("content-type")?.hasPrefix("text/event-stream") == true)
        let events = Self.events(streamed.body)
        let lines = events.filter { $0.event == "line" }
        let stored = (json(try await client.request("GET", "/api/v1/runs/1/logs?limit=5000"))["lines"]?.array ?? []).compactMap { $0["seq"]?.int }
        #expect(lines.compactMap(\.id) == stored, "every stored line once, in order")
        #expect(lines.contains { $0.data.contains("step 5 on web-2") }, "lines written after the stream opened arrived")
        #expect(events.last?.event == "end" && events.last?.data == #"{"status":"succeeded"}"#)
        // A reconnect with Last-Event-ID continues right after it.
        let middle = stored[stored.count / 2]
        let resumed = try await client.request("GET", "/api/v1/runs/1/logs", headers: [("Accept", "text/event-stream"), ("Last-Event-ID", "\(middle)")])
        #expect(Self.events(resumed.body).filter { $0.event == "line" }.compactMap(\.id) == Array(stored.drop { $0 <= middle }))
        process.kill(SIGTERM)
    }

    @Test func aClientThatGoesAwayFreesItsSlot() async throws {
        let (process, client) = try await server()
        _ = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                     body: Array(#"{"service":"web","version":"v1"}"#.utf8))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = client.port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        let request = "GET /api/v1/runs/1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 256)
        #expect(recv(fd, &buffer, buffer.count, 0) > 0, "the stream began")
        let metrics = { String(decoding: try await client.request("GET", "/metrics").body, as: UTF8.self) }
        #expect(try await metrics().contains("rollgate_open_streams 1"))
        close(fd)
        #expect(try await eventually(within: .seconds(10)) { try await metrics().contains("rollgate_open_streams 0") },
                "the slot is freed while the run still rolls")
        #expect(json(try await client.request("GET", "/api/v1/runs/1"))["status"] != .string("failed"))
        process.kill(SIGTERM)
        #expect(process.process.terminationStatus == 0)
    }
}

extension StreamTests {
    @Test func everyRunChangeStreamsFromTheEventLogAndResumes() async throws {
        let (process, client) = try await server()
        let port = client.port
        async let watched = readEvents(port: port, path: "/api/v1/events") { $0.contains("event: run.succeeded") }
        try await Task.sleep(for: .milliseconds(300))
        _ = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                     body: Array(#"{"service":"web","version":"v1"}"#.utf8))
        let text = try await watched
        let kinds = text.split(separator: "\n").filter { $0.hasPrefix("event: ") }.map { String($0.dropFirst(7)) }
        #expect(kinds.filter { $0.hasPrefix("run.") } == ["run.queued", "run.started", "run.target_done", "run.target_done", "run.succeeded"], "\(text)")
        // Each target's steps and the load balancer's states as the waiter saw them change.
        let data = text.split(separator: "\n").filter { $0.hasPrefix("data: ") }.compactMap { JSONValue.parse(Array($0.dropFirst(6).utf8)) }
        let web1 = data.filter { $0["target_id"] == .string("web-1") && $0["event"] != .string("target_done") }
            .map { "\($0["event"]!.string!) \($0["phase"]?.string ?? $0["detail"]?.string ?? "")" }
        #expect(web1 == ["step_started drain", "target_state draining (Target.DeregistrationInProgress)", "target_state unused (Target.NotRegistered)",
                         "step_succeeded drain", "step_started deploy", "step_succeeded deploy", "step_started restore",
                         "target_state initial (Elb.RegistrationInProgress)", "target_state healthy", "step_succeeded restore"], "\(web1)")
        let ids = text.matches(of: /id: (\d+)\n/).map { Int($0.output.1)! }
        #expect(ids == Array(1...ids.count), "every change once, in order")
        // Resumed after the second event: the rest, once each.
        let resumed = try await readEvents(port: port, path: "/api/v1/events", headers: "Last-Event-ID: 2\r\n") { $0.contains("event: run.succeeded") }
        let resumedIDs = resumed.matches(of: /id: (\d+)\n/).map { Int($0.output.1)! }
        #expect(resumedIDs == Array(3...ids.count), "\(resumed)")
        process.kill(SIGTERM)
    }
}
