import Foundation
import Testing
import Outbound

/// The one outbound client (libcurl): AWS calls and notifications reuse a connection per
/// origin, a cancelled call ends at once instead of at its timeout, and a host without
/// libcurl is refused at start when a service needs AWS.
@Suite(.serialized) struct OutboundConnectionTests {
    let directory = TempDirectory()

    /// The distinct client ports the sink saw, in order: one per TCP connection.
    func connections(_ sink: WebhookSink) -> [Int64] {
        var ports: [Int64] = []
        for record in sink.records {
            if let port = record["client_port"]?.int, !ports.contains(port) { ports.append(port) }
        }
        return ports
    }

    @Test func requestsToOneOriginShareOneConnection() async throws {
        let sink = try await WebhookSink(directory: directory, name: "reuse")
        defer { sink.stop() }
        let http = CurlHTTP()
        for number in 0..<6 {
            let response = try await http.send(OutboundRequest(method: "POST", url: "http://127.0.0.1:\(sink.port)/call/\(number)",
                                                               body: Array("{}".utf8)))
            #expect(response.status == 200)
        }
        #expect(sink.records.count == 6)
        #expect(connections(sink).count == 1, "six calls in turn opened \(connections(sink).count) connections")

        // Without reuse (what bench/aws-calls.sh compares against) each call connects anew.
        let fresh = CurlHTTP(reuseConnections: false)
        for number in 0..<3 {
            _ = try await fresh.send(OutboundRequest(method: "POST", url: "http://127.0.0.1:\(sink.port)/fresh/\(number)", body: Array("{}".utf8)))
        }
        #expect(connections(sink).count == 4)
    }

    @Test func callsAtOnceEachGetAConnectionAndThePoolStaysBounded() async throws {
        let sink = try await WebhookSink(directory: directory, name: "many")
        defer { sink.stop() }
        let http = CurlHTTP()
        try await withThrowingTaskGroup(of: Int.self) { group in
            for number in 0..<12 {
                group.addTask {
                    try await http.send(OutboundRequest(method: "POST", url: "http://127.0.0.1:\(sink.port)/at-once/\(number)",
                                                        body: Array("{}".utf8))).status
                }
            }
            for try await status in group { #expect(status == 200) }
        }
        #expect(sink.records.count == 12)
        // At most `perOrigin` handles (and their connections) are kept for the next calls.
        let before = connections(sink).count
        for number in 0..<8 {
            _ = try await http.send(OutboundRequest(method: "POST", url: "http://127.0.0.1:\(sink.port)/after/\(number)", body: Array("{}".utf8)))
        }
        #expect(connections(sink).count == before, "calls in turn after the burst opened new connections")
    }

    @Test func aCancelledCallEndsAtOnceNotAtItsTimeout() async throws {
        let sink = try await WebhookSink(directory: directory, name: "hold")
        defer { sink.stop() }
        let http = CurlHTTP()
        let call = Task {
            try await http.send(OutboundRequest(method: "POST", url: "http://127.0.0.1:\(sink.port)/hold", body: Array("{}".utf8),
                                                timeout: .seconds(120)))
        }
        try await Task.sleep(for: .milliseconds(300))
        call.cancel()
        // The call's timeout is 120 s: ending inside 20 s can only be the cancellation.
        let outcome = Outcome()
        Task { outcome.set(await call.result) }
        #expect(try await eventually(within: .seconds(20)) { outcome.value != nil }, "the cancelled call still waits")
        if case .failure(let error) = outcome.value { #expect(error is CancellationError, "\(error)") } else { Issue.record("the call was answered") }
        // The pool took the handle back; the next call works.
        #expect(try await http.send(OutboundRequest(method: "POST", url: "http://127.0.0.1:\(sink.port)/next", body: Array("{}".utf8))).status == 200)
    }

    @Test func aServiceThatNeedsAWSIsRefusedAtStartWithoutLibcurl() async throws {
        let config = directory.write("aws.yaml", """
            listen: 127.0.0.1:0
            database: \(directory.path)/aws.db
            aws: {region: us-east-1, endpoint_url: "http://127.0.0.1:9"}
            services:
              - name: api
                target_group_arn: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/0123456789abcdef
                hooks: {deploy: "true"}
            """)
        let (status, output) = try await RollgateProcess.run(["serve", "--config", config],
                                                             environment: ["ROLLGATE_LIBCURL": directory.path + "/missing/libcurl.so.4"])
        #expect(status != 0)
        #expect(output.contains("service api rolls an AWS target group, which needs libcurl"), "\(output)")
        #expect(output.contains("ROLLGATE_LIBCURL"), "\(output)")
        #expect(!output.contains("listening on"), "\(output)")
    }
}

/// What a call ended with, once it has.
final class Outcome: @unchecked Sendable {
    // @unchecked: `result` is only touched under `lock`.
    private let lock = NSLock()
    private var result: Result<OutboundResponse, any Error>?
    func set(_ value: Result<OutboundResponse, any Error>) { lock.lock(); result = value; lock.unlock() }
    var value: Result<OutboundResponse, any Error>? { lock.lock(); defer { lock.unlock() }; return result }
}
