@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import WireFormat
import Testing
import Foundation
import Dispatch
import Logging
import MicroHTTP
import HTTPTesting
@testable import RollgateServer
import Rollout

extension Logger {
    /// Tests never bootstrap the global logging system; they pass this.
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
}

/// The checkout this test file lives in.
let repositoryRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()
let migrationsDirectory = repositoryRoot + "/migrations"
let publicDirectory = repositoryRoot + "/public"

/// A fresh temporary directory, removed afterwards.
final class TempDirectory: @unchecked Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "rollgate-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String) -> String {
        let file = path + "/" + name
        precondition(FileManager.default.createFile(atPath: file, contents: Data(text.utf8)))
        return file
    }
}

/// A quick simulated service: drains in 300 ms, healthy 200 ms after registration.
func quickService(_ name: String = "web", targets: Int = 3, deploy: String = #"echo "deploying $ROLLGATE_VERSION to $ROLLGATE_TARGET_ID""#,
                  unhealthy: Set<String> = [], healthyTimeout: Duration = .seconds(10)) -> ServiceConfig {
    ServiceConfig(plan: ServicePlan(name: name, pollInterval: .milliseconds(100), drainTimeout: .seconds(10),
                                    healthyTimeout: healthyTimeout, hookTimeout: .seconds(10),
                                    hooks: HookCommands(deploy: deploy)),
                  source: .simulated(SimulationSettings(targets: targets, drainTime: .milliseconds(300),
                                                        healthyTime: .milliseconds(200), port: 8080, unhealthyTargets: unhealthy)))
}

func json(_ response: HTTPResponse) -> JSONValue {
    JSONValue.parse(response.body) ?? .string("not JSON: " + String(decoding: response.body, as: UTF8.self))
}

extension App {
    func call(_ method: String, _ path: String, headers: [String: String] = [:], body: String = "") async -> HTTPResponse {
        var query: [String: String] = [:]
        var route = path
        if let mark = path.firstIndex(of: "?") {
            route = String(path[..<mark])
            for pair in path[path.index(after: mark)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                query[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
        }
        return await router.handle(HTTPRequest(method: method, path: route, query: query, headers: headers, body: Array(body.utf8)))
    }
}

/// Polls a condition until it holds or the deadline passes (for end-to-end tests against real time).
func eventually(within limit: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: limit)
    while clock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return false
}

/// Runs blocking work (waiting for a process, reading its whole output) on a thread of its
/// own: on 2 cores Swift's task pool has 2 threads, and a test that blocks one starves every
/// other suite's `eventually` into flaky timeouts.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue(label: "rollgate.test.blocking").async { continuation.resume(with: Result { try body() }) }
    }
}

/// Runs a program to its end off the task pool: its exit status and what it printed (its
/// standard error with the output, or dropped).
func runToEnd(_ executable: String, _ arguments: [String], keepStandardError: Bool = true) async throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = keepStandardError ? pipe : FileHandle.nullDevice
    try process.run()
    let handle = pipe.fileHandleForReading
    let output = try await offPool { String(decoding: handle.readDataToEndOfFile(), as: UTF8.self) }
    try await offPool { process.waitUntilExit() }
    return (process.terminationStatus, output)
}

/// Waits until a run has ended (a minute at most) and returns it.
func finished(_ client: HTTPClient, run id: Int64) async throws -> JSONValue {
    var last = JSONValue.null
    let done = try await eventually(within: .seconds(60)) {
        last = json(try await client.request("GET", "/api/v1/runs/\(id)"))
        // An answer without a run (a 503 while the database is away) is no end.
        guard let status = last["status"]?.string else { return false }
        return !["queued", "running"].contains(status)
    }
    #expect(done, "run \(id) did not finish: \(last.text)")
    return last
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A demo-mode server in this process on a free loopback port, started (dispatcher and all).
func startedApp(_ services: [ServiceConfig], database: String) async throws -> App {
    var config = Config(database: database, services: services, isDemo: true)
    // The whole suite runs in one process on two cores: a renewal of the hold can wait its
    // turn for seconds. These tests are not about the hold (LeaseStoreTests, CrashTests are).
    config.lease = .seconds(60)
    let app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                      environment: ["PATH": "/usr/bin:/bin"], logger: .quiet, listen: ListenAddress(host: "127.0.0.1", port: 0))
    try await app.start()
    return app
}

/// Queues a deploy over HTTP; returns the run's id.
func deploy(_ client: HTTPClient, _ service: String, _ version: String) async throws -> Int64 {
    let response = try await client.request("POST", "/api/v1/deploys", body: Array(#"{"service":"\#(service)","version":"\#(version)"}"#.utf8))
    guard let id = json(response)["id"]?.int else { throw TestFailure("not queued: \(json(response).text)") }
    return id
}

/// Reads an SSE stream on a raw socket until `until` holds for what arrived, then leaves.
func readEvents(port: UInt16, path: String, headers: String = "", until: @escaping @Sendable (String) -> Bool) async throws -> String {
    try await offPool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\(headers)\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !until(String(decoding: received, as: UTF8.self)) {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
