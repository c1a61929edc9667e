@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import Monitoring
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
import HTTPTesting
import RollgateServer

/// The operator's side, with the real binary: what hooks see, left-out targets through the
/// CLI (status, runs, restore, forget), locks, backups.
@Suite(.serialized) struct FleetCLITests {
    let directory = TempDirectory()
    let token = "fleet-cli-token-0123456789"

    /// web-2's deploy fails while the file `broken` exists in the test directory.
    func config(_ name: String, extra: String = "", serviceExtra: String = "",
                deploy: String = #"if [ "$ROLLGATE_TARGET_ID" = web-2 ] && [ -f BROKEN ]; then echo "broken build"; exit 3; fi; echo "installed $ROLLGATE_VERSION""#) -> String {
        directory.write("\(name).yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(directory.path)/\(name).db
            api_tokens: [{name: ops, token_env: TEST_ROLLGATE_TOKEN}]
            \(extra)
            services:
              - name: web
                simulated: {targets: 3, drain_seconds: 0.2, healthy_seconds: 0.2}
                poll_interval: 100ms
                \(serviceExtra)
                hooks:
                  deploy: '\(deploy.replacingOccurrences(of: "BROKEN", with: directory.path + "/broken").replacingOccurrences(of: "'", with: "''"))'
            """)
    }

    func cli(_ arguments: [String], port: UInt16) async throws -> (Int32, String) {
        try await RollgateProcess.run(arguments + ["--server", "http://127.0.0.1:\(port)", "--token", token])
    }

    @Test func hooksGetNoSecretAndSecretValuesAreMaskedInTheLog() async throws {
        let awsSecret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
        let githubSecret = "github-webhook-secret-value-42"
        let passedToken = "deploy-registry-token-0099"
        let config = config("env", extra: "github: {secret_env: GITHUB_WEBHOOK_SECRET}",
                            serviceExtra: "hook_env: [REGISTRY_TOKEN]",
                            deploy: "env | sort; echo \"the api token is \(token)\"")
        let server = try RollgateProcess(["serve", "--config", config], environment: [
            "TEST_ROLLGATE_TOKEN": token, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID01", "AWS_SECRET_ACCESS_KEY": awsSecret,
            "GITHUB_WEBHOOK_SECRET": githubSecret, "REGISTRY_TOKEN": passedToken, "OTHER_PASSWORD": "hunter2-hunter2",
            "AWS_PROFILE": "prod", "APP_COLOR": "blue",
        ])
        let port = try await server.port()
        let (status, output) = try await cli(["deploy", "web", "v1", "--follow"], port: port)
        #expect(status == 0, "\(output)")
        let client = HTTPClient(port: port)
        let lines = (json(try await client.request("GET", "/api/v1/runs/1/logs?limit=5000"))["lines"]?.array ?? []).compactMap { $0["text"]?.string }
        let log = lines.joined(separator: "\n")
        for secret in [token, awsSecret, githubSecret, passedToken, "hunter2-hunter2", "AKIAEXAMPLEKEYID01"] {
            #expect(!log.contains(secret), "\(secret) reached the stored log")
        }
        for name in ["TEST_ROLLGATE_TOKEN=", "AWS_SECRET_ACCESS_KEY=", "AWS_ACCESS_KEY_ID=", "GITHUB_WEBHOOK_SECRET=", "OTHER_PASSWORD="] {
            #expect(!lines.contains { $0.hasPrefix(name) }, "\(name) was passed to the hook")
        }
        #expect(lines.contains("REGISTRY_TOKEN=***"), "listed in hook_env: passed, and masked in the log")
        #expect(lines.contains("AWS_PROFILE=prod") && lines.contains("APP_COLOR=blue"), "ordinary variables still pass")
        #expect(lines.contains("ROLLGATE_ATTEMPT=1"))
        #expect(lines.contains("the api token is ***"))
        server.kill(SIGTERM)
    }

    @Test func aLeftOutTargetIsShownByTheCLIAndRestoredOrForgotten() async throws {
        let broken = directory.path + "/broken"
        #expect(FileManager.default.createFile(atPath: broken, contents: nil))
        let server = try RollgateProcess(["serve", "--config", config("left")], environment: ["TEST_ROLLGATE_TOKEN": token])
        let port = try await server.port()
        let (failed, failure) = try await cli(["deploy", "web", "v1", "--follow"], port: port)
        #expect(failed == 1, "\(failure)")
        #expect(failure.contains("deploy hook failed on web-2: exit 3"))
        #expect(failure.contains("hint: web-2 is still out of the load balancer: fix it, then `rollgate restore web web-2`"), "the next step: \(failure)")

        let (_, status) = try await cli(["status"], port: port)
        #expect(status.contains(/web-2:80 +unknown +left_out +left out by run 1/), "aligned columns: \(status)")
        #expect(status.contains("left out by run 1 deploying v1: deploy hook failed on web-2: exit 3"), "one level, not nested")
        #expect(status.contains("`rollgate restore web web-2`") && status.contains("`rollgate forget web web-2`"), "the next step, as it is typed")
        let (_, runs) = try await cli(["runs"], port: port)
        #expect(runs.contains("LEFT OUT\tweb\tweb-2"), "\(runs)")

        // Fixed by hand: put it back without a deploy.
        try FileManager.default.removeItem(atPath: broken)
        // As `status` prints the target (ID:PORT) works too.
        let (restored, restoreOutput) = try await cli(["restore", "web", "web-2:80"], port: port)
        #expect(restored == 0, "\(restoreOutput)")
        #expect(restoreOutput.contains("run 2: restore web-2 in web queued"))
        let client = HTTPClient(port: port)
        #expect(try await eventually { json(try await client.request("GET", "/api/v1/runs/2"))["status"] == .string("succeeded") })
        let restoreLog = (json(try await client.request("GET", "/api/v1/runs/2/logs"))["lines"]?.array ?? []).compactMap { $0["text"]?.string }
        #expect(restoreLog.contains("RegisterTargets web-2:80"))
        #expect(!restoreLog.contains { $0.hasPrefix("deploy hook") }, "a restore runs no hook: \(restoreLog)")
        let (_, after) = try await cli(["status"], port: port)
        #expect(!after.contains("left_out"), "\(after)")
        #expect(after.contains("last good: none"), "a restore is not a deploy")
        let (again, missing) = try await cli(["restore", "web", "web-2"], port: port)
        #expect(again == 1 && missing.contains("web-2 is not left out in web"), "\(missing)")

        // Broken again, then the instance is gone for good: forget it.
        #expect(FileManager.default.createFile(atPath: broken, contents: nil))
        _ = try await cli(["deploy", "web", "v2", "--follow"], port: port)
        let (forgot, forgetOutput) = try await cli(["forget", "web", "web-2", "--reason", "instance terminated"], port: port)
        #expect(forgot == 0, "\(forgetOutput)")
        #expect(forgetOutput.contains("web-2 forgotten in web"))
        // The forget is on record: who and why, in the log of the run that left it out.
        let (_, log) = try await cli(["logs", "3"], port: port)
        #expect(log.contains("web-2 forgotten by api:ops: instance terminated"), "\(log)")
        let services = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first
        #expect(services?["left_out"]?.int == 0)
        server.kill(SIGTERM)
    }

    @Test func aLockedServiceRefusesTheCLIDeployUntilUnlocked() async throws {
        let server = try RollgateProcess(["serve", "--config", config("lock")], environment: ["TEST_ROLLGATE_TOKEN": token])
        let port = try await server.port()
        let (locked, lockOutput) = try await cli(["lock", "web", "--reason", "quarter close", "--for", "2h"], port: port)
        #expect(locked == 0, "\(lockOutput)")
        #expect(lockOutput.contains("web locked by api:ops until "))
        let (refused, refusal) = try await cli(["deploy", "web", "v1"], port: port)
        #expect(refused == 1)
        #expect(refusal.contains("HTTP 423: web is locked by api:ops: quarter close (until "), "\(refusal)")
        let (_, status) = try await cli(["status"], port: port)
        #expect(status.contains("LOCKED by api:ops: quarter close"))
        let (unlocked, _) = try await cli(["unlock", "web"], port: port)
        #expect(unlocked == 0)
        let (deployed, output) = try await cli(["deploy", "web", "v1", "--follow"], port: port)
        #expect(deployed == 0, "\(output)")
        let (badFor, badOutput) = try await cli(["lock", "web", "--reason", "x", "--for", "soon"], port: port)
        #expect(badFor != 0 && badOutput.contains("--for must be a duration"))
        server.kill(SIGTERM)
    }

    @Test func aBackupTakenWhileServingIsADatabaseThatServes() async throws {
        let config = config("backup")
        let server = try RollgateProcess(["serve", "--config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        let port = try await server.port()
        let (status, output) = try await cli(["deploy", "web", "v1", "--follow"], port: port)
        #expect(status == 0, "\(output)")
        let copy = directory.path + "/copy.db"
        let (backedUp, backupOutput) = try await RollgateProcess.run(["backup", copy, "--database", directory.path + "/backup.db"])
        #expect(backedUp == 0, "\(backupOutput)")
        let (refused, refusal) = try await RollgateProcess.run(["backup", copy, "--database", directory.path + "/backup.db"])
        #expect(refused != 0 && refusal.contains("exists"), "a backup never overwrites")
        let original = json(try await HTTPClient(port: port).request("GET", "/api/v1/runs/1/logs"))
        // The copy serves, beside the running original.
        let restored = try RollgateProcess(["serve", "--config", config, "--database", copy, "--listen", "127.0.0.1:0"],
                                           environment: ["TEST_ROLLGATE_TOKEN": token])
        let client = HTTPClient(port: try await restored.port())
        #expect(json(try await client.request("GET", "/api/v1/runs/1"))["status"] == .string("succeeded"))
        #expect(json(try await client.request("GET", "/api/v1/runs/1/logs"))["lines"] == original["lines"])
        restored.kill(SIGTERM)
        server.kill(SIGTERM)
    }

    @Test func theClientCommandsShowRunsLogsAndCancel() async throws {
        let server = try RollgateProcess(["serve", "--config", config("client", deploy: #"echo "installing $ROLLGATE_VERSION"; sleep 0.3"#)],
                                         environment: ["TEST_ROLLGATE_TOKEN": token])
        let port = try await server.port()
        let (deployed, output) = try await cli(["deploy", "web", "v1", "--reason", "first", "--follow"], port: port)
        #expect(deployed == 0, "\(output)")
        let (_, detail) = try await cli(["run", "1"], port: port)
        #expect(detail.contains("run 1: web v1 succeeded") && detail.contains("requested by api:ops, because: first"), "\(detail)")
        #expect(detail.contains(try Regex("web-1 +drain +succeeded")), "aligned columns: \(detail)")
        let (_, asJSON) = try await cli(["run", "1", "--json"], port: port)
        #expect(JSONValue.parse(Array(asJSON.utf8))?["status"] == .string("succeeded"))
        let (_, logs) = try await cli(["logs", "1"], port: port)
        #expect(logs.contains("[web-2] installing v1") && logs.contains("all 3 target(s) run v1 and are healthy"))
        let (_, runs) = try await cli(["runs"], port: port)
        #expect(runs.contains(try Regex("^ID +SERVICE +VERSION +STATUS +CREATED +REQUESTED BY +REASON +ERROR\n")), "\(runs)")
        #expect(runs.contains(try Regex(" api:ops +first")))
        // Columns line up: each starts where its header does.
        let runLines = runs.split(separator: "\n")
        #expect(runLines.count >= 2 && runLines[0].firstRange(of: "SERVICE")?.lowerBound.utf16Offset(in: runLines[0])
                == runLines[1].firstRange(of: "web")?.lowerBound.utf16Offset(in: runLines[1]), "\(runs)")
        let (_, runsJSON) = try await cli(["runs", "--json"], port: port)
        #expect(JSONValue.parse(Array(runsJSON.utf8))?["runs"]?.array?.count == 1)
        // A second deploy, re-attached to with logs --follow, then cancelled while it rolls.
        let (_, queued) = try await cli(["deploy", "web", "v2"], port: port)
        #expect(queued.contains("run 2: web v2"))
        let client = HTTPClient(port: port)
        #expect(try await eventually { json(try await client.request("GET", "/api/v1/runs/2"))["status"] == .string("running") })
        let (cancelled, cancelOutput) = try await cli(["cancel", "2"], port: port)
        #expect(cancelled == 0 && cancelOutput.contains("run 2: cancel requested"), "\(cancelOutput)")
        let (followed, followOutput) = try await cli(["logs", "2", "--follow"], port: port)
        #expect(followed == 1, "a cancelled run exits 1")
        #expect(followOutput.contains("run 2 cancelled"), "\(followOutput)")
        let (_, status) = try await cli(["status", "web"], port: port)
        #expect(status.hasPrefix("web\tlast good: v1"))
        let (missing, unknown) = try await cli(["status", "nope"], port: port)
        #expect(missing == 1 && unknown.contains("no service named nope"))
        server.kill(SIGTERM)
    }

    /// A canary bakes until promoted from the CLI; a bad release is rolled back from the CLI.
    @Test func promoteAndRollbackFromTheCommandLine() async throws {
        let config = config("canary", serviceExtra: "canary: {targets: 1, bake: 10m}")
        let server = try RollgateProcess(["serve", "--config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        defer { server.kill(SIGTERM) }
        let port = try await server.port()
        let client = HTTPClient(port: port)
        _ = try await cli(["deploy", "web", "v1"], port: port)
        #expect(try await eventually(within: .seconds(20)) {
            (json(try await client.request("GET", "/api/v1/runs/1/logs"))["lines"]?.array ?? []).contains { $0["text"]?.string?.contains("baking 10m") == true }
        })
        let (promoted, promoteOutput) = try await cli(["promote", "1"], port: port)
        #expect(promoted == 0 && promoteOutput.contains("run 1: promoted"), "\(promoteOutput)")
        #expect(try await finished(client, run: 1)["status"] == .string("succeeded"))
        // v2 bakes too: promote it, then roll it back.
        _ = try await cli(["deploy", "web", "v2"], port: port)
        #expect(try await eventually(within: .seconds(20)) { try await cli(["promote", "2"], port: port).0 == 0 })
        #expect(try await finished(client, run: 2)["status"] == .string("succeeded"))
        let (status, output) = try await cli(["rollback", "web", "--reason", "v2 is slow"], port: port)
        #expect(status == 0 && output.contains("run 3: web v1 queued (v2 is slow)"), "\(output)")
        let (refused, refusal) = try await cli(["promote", "99"], port: port)
        #expect(refused != 0 && refusal.contains("no run 99"), "\(refusal)")
    }
}
