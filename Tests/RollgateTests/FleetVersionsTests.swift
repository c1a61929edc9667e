import Foundation
import Testing
import HTTPTesting
@testable import Configuration
@testable import RollgateServer
@testable import WireFormat
import Rollout

/// Which version runs on which target, after deploys, a failure, a restore, a rollback and a
/// cancel: the API's services, the page, the text page, `/metrics` and `rollgate status` all
/// say the same, a restore moves no version, and "last good" moves only with a succeeded deploy.
@Suite struct FleetVersionsTests {
    let directory = TempDirectory()

    /// v3 fails on web-3; v4 is slow (cancelled after its first target).
    static let hook = #"if [ "$ROLLGATE_VERSION" = v3 ] && [ "$ROLLGATE_TARGET_ID" = web-3 ]; then exit 3; fi; if [ "$ROLLGATE_VERSION" = v4 ]; then sleep 1; fi; echo ok"#

    func deployRun(_ client: HTTPClient, _ service: String, _ version: String) async throws -> Int64 {
        try await RollgateTests.deploy(client, service, version)
    }

    func deploy(_ client: HTTPClient, _ version: String) async throws -> JSONValue {
        let id = try await deployRun(client, "web", version)
        return try await finished(client, run: id)
    }

    func web(_ client: HTTPClient) async throws -> JSONValue {
        try #require(json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first)
    }

    func versions(_ service: JSONValue) -> [String: String] {
        var map: [String: String] = [:]
        for target in service["targets"]?.array ?? [] {
            map[target["id"]?.string ?? ""] = target["version"]?.string ?? "unknown"
        }
        return map
    }

    @Test func theVersionMapFollowsDeploysFailuresRestoresRollbacksAndCancels() async throws {
        let app = try await startedApp([quickService("web", deploy: Self.hook)], database: directory.path + "/fleet.db")
        defer { Task { await app.stop() } }
        let client = HTTPClient(port: app.server.port)
        var service = try await web(client)
        #expect(versions(service) == ["web-1": "unknown", "web-2": "unknown", "web-3": "unknown"], "never deployed by rollgate")
        #expect(service["fleet"] == .string("serving 3 of 3; all on unknown"))

        #expect(try await deploy(client, "v1")["status"] == .string("succeeded"))
        #expect(try await deploy(client, "v2")["status"] == .string("succeeded"))
        service = try await web(client)
        #expect(versions(service) == ["web-1": "v2", "web-2": "v2", "web-3": "v2"])
        #expect(service["fleet"] == .string("serving 3 of 3; all on v2") && service["serving"]?.int == 3)

        // A failure: web-1 and web-2 run v3, web-3 was left out still on v2; last good stays v2.
        let failed = try await deploy(client, "v3")
        #expect(failed["status"] == .string("failed"))
        service = try await web(client)
        #expect(versions(service) == ["web-1": "v3", "web-2": "v3", "web-3": "v2"])
        #expect(service["last_good_version"] == .string("v2"))
        #expect(service["fleet"] == .string("serving 2 of 3; mixed: v3 on web-1, web-2, v2 on web-3"), "\(service["fleet"] ?? .null)")
        #expect(service["versions"]?.array?.map { $0["version"]?.string ?? "-" } == ["v3", "v2"])

        // A restore puts web-3 back without moving a version.
        let restore = try await client.request("POST", "/api/v1/services/web/targets/web-3/restore")
        #expect(restore.status == 202)
        let restored = try await finished(client, run: try #require(json(restore)["id"]?.int))
        #expect(restored["status"] == .string("succeeded") && restored["kind"] == .string("restore"))
        service = try await web(client)
        #expect(versions(service) == ["web-1": "v3", "web-2": "v3", "web-3": "v2"], "a restore moves no version")
        #expect(service["fleet"] == .string("serving 3 of 3; mixed: v3 on web-1, web-2, v2 on web-3"))
        #expect(service["last_good_version"] == .string("v2"), "a restore is not a good deploy")

        // The rollback deploys the good version before the current one: v1 everywhere.
        let rollback = try await client.request("POST", "/api/v1/services/web/rollback")
        #expect(rollback.status == 202, "\(String(decoding: rollback.body, as: UTF8.self))")
        #expect(try await finished(client, run: try #require(json(rollback)["id"]?.int))["status"] == .string("succeeded"))
        service = try await web(client)
        #expect(versions(service) == ["web-1": "v1", "web-2": "v1", "web-3": "v1"])
        #expect(service["last_good_version"] == .string("v1"))

        // A cancel once the first target is back: web-1 on v4, the rest still on v1.
        let id = try await deployRun(client, "web", "v4")
        #expect(try await eventually(within: .seconds(20)) {
            json(try await client.request("GET", "/api/v1/runs/\(id)"))["steps"]?.array?.contains {
                $0["target_id"] == .string("web-1") && $0["phase"] == .string("restore") && $0["status"] == .string("succeeded")
            } ?? false
        })
        #expect(try await client.request("POST", "/api/v1/runs/\(id)/cancel").status == 202)
        #expect(try await finished(client, run: id)["status"] == .string("cancelled"))
        service = try await web(client)
        let after = versions(service)
        #expect(after["web-1"] == "v4" && after["web-3"] == "v1", "\(after)")
        #expect(service["fleet"]?.string?.hasPrefix("serving 3 of 3; mixed: v4 on web-1") == true, "\(service["fleet"] ?? .null)")
        #expect(service["last_good_version"] == .string("v1"), "a cancelled deploy does not move last good")

        // The page, the text page, /metrics and the CLI say the same.
        let page = String(decoding: try await client.request("GET", "/").body, as: UTF8.self)
        #expect(page.contains("<span class=\"id\">web-1</span> <span class=\"version\">v4</span>") && page.contains("class=\"fleet attention\""), "the page")
        #expect(page.contains(">restore web-3<"), "a restore run is shown as a restore")
        let text = String(decoding: try await client.request("GET", "/status.txt").body, as: UTF8.self)
        #expect(text.contains("VERSION") && text.contains("mixed: v4 on web-1"), "\(text)")
        let metrics = String(decoding: try await client.request("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains(#"rollgate_target_info{service="web",target="web-1",version="v4"} 1"#))
        #expect(metrics.contains(#"rollgate_target_info{service="web",target="web-3",version="v1"} 1"#))
        #expect(!metrics.contains(#"target="web-1",version="v1""#), "a target's old version is not left as a series")
        let (status, output) = try await RollgateProcess.run(["status", "--server", "http://127.0.0.1:\(app.server.port)"])
        #expect(status == 0 && output.contains("mixed: v4 on web-1") && output.contains(/\n  web-1:8080 +v4 +healthy/), "\(output)")
    }
}
