import Foundation
import Testing
import HTTPTesting
@testable import RollgateServer
@testable import WireFormat

/// The CLI as scripts use it: stdout is only the result (`id=$(rollgate deploy ... --json)`),
/// errors and hints go to stderr; a refusal for a lock names the CLI's own flag.
@Suite struct CLIOutputTests {
    let directory = TempDirectory()

    /// Runs the CLI with stdout and stderr apart.
    func cli(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: rollgateBinary)
        process.arguments = arguments
        process.environment = ["PATH": "/usr/bin:/bin"]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return try await offPool {
            let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
        }
    }

    @Test func resultsOnStdoutErrorsAndHintsOnStderr() async throws {
        let unreachable = try await cli(["deploy", "web", "v1", "--server", "http://127.0.0.1:1"])
        #expect(unreachable.status == 3 && unreachable.stdout.isEmpty, "\(unreachable)")
        #expect(unreachable.stderr.contains("cannot reach the server") && unreachable.stderr.contains("hint: is rollgate running there?"))

        let app = try await startedApp([quickService("web")], database: directory.path + "/cli.db")
        defer { Task { await app.stop() } }
        let server = "http://127.0.0.1:\(app.server.port)"
        let client = HTTPClient(port: app.server.port)
        #expect(try await client.request("POST", "/api/v1/services/web/lock", body: Array(#"{"reason":"incident 7"}"#.utf8)).status == 200)
        let refused = try await cli(["deploy", "web", "v2", "--server", server])
        #expect(refused.status == 1 && refused.stdout.isEmpty, "\(refused)")
        #expect(refused.stderr.contains("HTTP 423") && refused.stderr.contains("incident 7"), "\(refused.stderr)")
        #expect(refused.stderr.contains("hint: pass --wait-for-lock") && !refused.stderr.contains("\"wait_for_lock\": true"),
                "the CLI's flag, not the API's field")

        let queued = try await cli(["deploy", "web", "v2", "--wait-for-lock", "--json", "--server", server])
        #expect(queued.status == 0 && queued.stderr.isEmpty, "\(queued)")
        let run = try #require(JSONValue.parse(Array(queued.stdout.utf8)), "stdout is the run's JSON alone: \(queued.stdout)")
        #expect(run["status"] == .string("queued") && run["wait_for_lock"] == .bool(true))
        let status = try await cli(["status", "--server", server])
        #expect(status.stdout.contains("queued: run \(run["id"]?.int ?? 0) (behind the lock)"), "the queue is visible: \(status.stdout)")

        #expect(try await client.request("DELETE", "/api/v1/services/web/lock").status == 200)
        let followed = try await cli(["deploy", "web", "v3", "-f", "--server", server])
        #expect(followed.status == 0, "-f follows the run to its end: \(followed)")
        #expect(followed.stdout.contains("run ") && followed.stdout.contains("succeeded"), "\(followed.stdout)")
    }

    @Test func aMistypedCommandIsNamedWithTheNearestOne() async throws {
        let typo = try await cli(["deplyo", "web", "v3"])
        #expect(typo.status == 64 && typo.stdout.isEmpty, "\(typo)")
        #expect(typo.stderr.contains("unknown command deplyo; did you mean `rollgate deploy`?"), "\(typo.stderr)")
        let unknown = try await cli(["frobnicate"])
        #expect(unknown.status == 64 && unknown.stderr.contains("unknown command frobnicate") && !unknown.stderr.contains("did you mean"))
        let known = try await cli(["--version"])
        #expect(known.status == 0 && !known.stdout.isEmpty)
    }
}
