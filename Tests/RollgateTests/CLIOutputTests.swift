import Foundation
import Testing
import HTTPTesting
@testable import Configuration
@testable import RollgateServer
@testable import WireFormat

/// The CLI as scripts use it: stdout is only the result (`id=$(rollgate deploy ... --json)`),
/// errors and hints go to stderr; a refusal for a lock names the CLI's own flag.
@Suite struct CLIOutputTests {
    let directory = TempDirectory()

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

        // --follow on a queued run says why it waits.
        let waiting = try RollgateProcess(["deploy", "web", "v4", "--wait-for-lock", "-f", "--server", server])
        #expect(try await eventually(within: .seconds(20)) { waiting.text.contains("queued: web is locked by") && waiting.text.contains("incident 7") },
                "\(waiting.text)")
        #expect(try await client.request("DELETE", "/api/v1/services/web/lock").status == 200)
        #expect(try await eventually(within: .seconds(30)) { !waiting.process.isRunning })
        #expect(waiting.process.terminationStatus == 0 && waiting.text.contains("succeeded"), "\(waiting.text)")
        let followed = try await cli(["deploy", "web", "v3", "-f", "--server", server])
        #expect(followed.status == 0, "-f follows the run to its end: \(followed)")
        #expect(followed.stdout.contains("run ") && followed.stdout.contains("succeeded"), "\(followed.stdout)")
        // Progress as the roll moves from target to target.
        let progress = followed.stdout.split(separator: "\n").filter { $0.hasPrefix("progress: ") }
        #expect(progress.contains { $0.hasPrefix("progress: 0 of 3 targets done") } && progress.contains { $0.hasPrefix("progress: 2 of 3 targets done") },
                "\(progress)")
        #expect(progress.contains { $0.contains(" for ") && $0.contains(" of ~") }, "the target in hand and its limit: \(progress)")
        #expect(zip(progress, progress.dropFirst()).allSatisfy { $0 != $1 }, "said when it changes, not every poll: \(progress)")
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

/// Text pages fit a terminal: every table line within `?width=` (100 by default), long cells
/// cut with `…`, the run page with its times.
@Suite struct TextPageWidthTests {
    let directory = TempDirectory()

    @Test func tablesFitTheWidthAndTheRunPageHasItsTimes() async throws {
        let app = try await startedApp([quickService("web", targets: 2)], database: directory.path + "/width.db")
        defer { Task { await app.stop() } }
        let client = HTTPClient(port: app.server.port)
        let reason = String(repeating: "a very long reason that explains everything ", count: 10)
        let body = #"{"service":"web","version":"v1","reason":"\#(reason)"}"#
        let id = try #require(json(try await client.request("POST", "/api/v1/deploys", body: Array(body.utf8)))["id"]?.int)
        _ = try await finished(client, run: id)
        func text(_ path: String) async throws -> String {
            String(decoding: try await client.request("GET", path, headers: [("Accept", "text/plain")]).body, as: UTF8.self)
        }
        let state = try await text("/status.txt")
        let tableLines = state.split(separator: "\n").filter { !$0.isEmpty }
        #expect(tableLines.allSatisfy { $0.count <= 100 }, "\(tableLines.map(\.count).max() ?? 0) columns: \(state)")
        #expect(state.contains("…"), "the long reason is cut")
        let narrow = try await text("/status.txt?width=60")
        #expect(narrow.split(separator: "\n").allSatisfy { $0.count <= 60 }, "\(narrow)")
        let run = try await text("/runs/\(id)?width=80")
        #expect(run.contains("created ") && run.contains(", started ") && run.contains(", finished "), "the run's times: \(run)")
        let steps = run.split(separator: "\n", omittingEmptySubsequences: false).drop { !$0.hasPrefix("TARGET") }.prefix { !$0.isEmpty }
        #expect(!steps.isEmpty && steps.allSatisfy { $0.count <= 80 }, "\(steps)")
        let refused = try await client.request("GET", "/status.txt?width=5")
        #expect(refused.status == 400 && json(refused)["error"]?["code"] == .string("invalid_width"))
    }

    /// `-o json` (and `--json`) on every command: stdout parses as JSON, nothing else on it.
    @Test func everyCommandPrintsJSONWhenAsked() async throws {
        let app = try await startedApp([quickService("web", targets: 2)], database: directory.path + "/json.db")
        defer { Task { await app.stop() } }
        let server = ["--server", "http://127.0.0.1:\(app.server.port)"]
        let client = HTTPClient(port: app.server.port)
        for version in ["v1", "v2"] {
            let deployed = try await cli(["deploy", "web", version, "-o", "json"] + server)
            let id = try #require(JSONValue.parse(Array(deployed.stdout.utf8))?["id"]?.int, "deploy: \(deployed)")
            _ = try await finished(client, run: id)
        }
        let commands: [[String]] = [["status"], ["status", "web"], ["runs"], ["run", "1"], ["logs", "1"], ["plan", "web"],
                                    ["lock", "web", "--reason", "json test"], ["unlock", "web"], ["rollback", "web"]]
        for command in commands {
            for flag in [["-o", "json"], ["--json"]] {
                if command == ["unlock", "web"] && flag == ["--json"] { continue }   // unlocked already
                if command.first == "lock" && flag == ["--json"] { continue }
                if command.first == "rollback" && flag == ["--json"] { continue }
                let answer = try await cli(command + flag + server)
                #expect(answer.status == 0 && JSONValue.parse(Array(answer.stdout.utf8)) != nil,
                        "\(command) \(flag): \(answer)")
            }
        }
        // The rollback is labelled; -o wide adds columns; the target table lines up.
        let runs = try await cli(["runs"] + server)
        #expect(runs.stdout.contains("v1 (rollback from v2)"), "\(runs)")
        let wide = try await cli(["runs", "-o", "wide"] + server)
        let header = try #require(wide.stdout.split(separator: "\n").first)
        #expect(header.hasSuffix("STARTED                   FINISHED                  ROLLED BY  SHORT FOR  OUT OF SERVICE") || header.contains("SHORT FOR  OUT OF SERVICE"), "\(header)")
        #expect(!(try await cli(["runs"] + server)).stdout.contains("SHORT FOR"), "only -o wide has them")
        let status = try await cli(["status", "-o", "wide"] + server)
        let table = status.stdout.split(separator: "\n").filter { $0.hasPrefix("  TARGET") || $0.hasPrefix("  web-") }
        #expect(table.first?.hasPrefix("  TARGET") == true && table.first?.contains("VERSION SINCE") == true, "\(status)")
        // Each row's state starts where the header's STATE does (whatever the state is).
        let at = try #require(table.first?.firstRange(of: "STATE")?.lowerBound.utf16Offset(in: table.first!))
        let lined = table.allSatisfy { row in
            let chars = Array(row)
            return chars.count > at && chars[at] != " " && chars[at - 1] == " "
        }
        #expect(table.count == 3 && lined, "the STATE column lines up: \(table)")
        let running = try await cli(["deploy", "web", "v3", "--json"] + server)
        let id = try #require(JSONValue.parse(Array(running.stdout.utf8))?["id"]?.int)
        let cancelled = try await cli(["cancel", "\(id)", "-o", "json"] + server)
        #expect(JSONValue.parse(Array(cancelled.stdout.utf8))?["id"]?.int == id, "\(cancelled)")
        let wrong = try await cli(["runs", "-o", "yaml"] + server)
        #expect(wrong.status != 0 && wrong.stderr.contains("-o must be text, wide or json"), "\(wrong)")
    }

    /// With `public_url`, a queued deploy's answer carries its page's address.
    @Test func aDeployAnswersWithItsPageWhenThePublicURLIsKnown() async throws {
        var config = Config(database: directory.path + "/url.db", services: [quickService("web")], isDemo: true)
        config.publicURL = "https://deploy.example.com"
        let app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory, environment: [:], logger: .quiet)
        let run = json(await app.call("POST", "/api/v1/deploys", body: #"{"service":"web","version":"v1"}"#))
        #expect(run["url"] == .string("https://deploy.example.com/runs/\(run["id"]?.int ?? 0)"), "\(run)")
    }
}

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
