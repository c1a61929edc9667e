@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
import HTTPTesting
@testable import RollgateServer
import Rollout

/// Promote, rollback on request, and an automatic rollback, on a running server.
@Suite struct CanaryAPITests {
    let directory = TempDirectory()

    func startApp(_ services: [ServiceConfig]) async throws -> App {
        try await startedApp(services, database: directory.path + "/canary.db")
    }

    @Test func aPromoteEndsTheBakeOfARunningCanary() async throws {
        var web = quickService("web")
        web.plan.canary = Canary(targets: 1, bake: .seconds(600))
        let app = try await startApp([web, quickService("api")])
        let client = HTTPClient(port: app.server.port)
        let id = try await deploy(client, "web", "v2")
        #expect(try await eventually(within: .seconds(20)) {
            let lines = json(try await client.request("GET", "/api/v1/runs/\(id)/logs"))["lines"]?.array ?? []
            return lines.contains { $0["text"]?.string?.hasPrefix("canary web-1 runs v2; baking 10m") == true }
        }, "the canary bakes")
        #expect(json(try await client.request("GET", "/api/v1/runs/\(id)"))["status"] == .string("running"), "and the rest wait")
        let promoted = try await client.request("POST", "/api/v1/runs/\(id)/promote")
        #expect(promoted.status == 202)
        #expect(try await finished(client, run: id)["status"] == .string("succeeded"), "the rest followed at once")
        // Refusals: not running any more, no canary, no such run.
        #expect(json(try await client.request("POST", "/api/v1/runs/\(id)/promote"))["error"]?["code"] == .string("run_not_running"))
        let other = try await deploy(client, "api", "v2")
        #expect(json(try await client.request("POST", "/api/v1/runs/\(other)/promote"))["error"]?["code"] == .string("no_canary"))
        #expect(try await client.request("POST", "/api/v1/runs/999/promote").status == 404)
        await app.stop()
    }

    @Test func aRollbackOnRequestDeploysTheGoodVersionBeforeTheCurrentOne() async throws {
        let app = try await startApp([quickService("web")])
        let client = HTTPClient(port: app.server.port)
        let none = try await client.request("POST", "/api/v1/services/web/rollback")
        #expect(none.status == 409 && json(none)["error"]?["code"] == .string("nothing_to_roll_back"))
        for version in ["v1", "v2"] {
            #expect(try await finished(client, run: try await deploy(client, "web", version))["status"] == .string("succeeded"))
        }
        let asked = try await client.request("POST", "/api/v1/services/web/rollback", body: Array(#"{"reason":"v2 leaks memory"}"#.utf8))
        #expect(asked.status == 202)
        let run = json(asked)
        #expect(run["version"] == .string("v1") && run["reason"] == .string("v2 leaks memory"))
        #expect(try await finished(client, run: try #require(run["id"]?.int))["status"] == .string("succeeded"))
        let web = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first
        #expect(web?["last_good_version"] == .string("v1"))
        #expect(try await client.request("POST", "/api/v1/services/nope/rollback").status == 404)
        let unknown = try await client.request("POST", "/api/v1/services/web/rollback", body: Array(#"{"versoin":"x"}"#.utf8))
        #expect(unknown.status == 422 && json(unknown)["error"]?["code"] == .string("unknown_key"))
        await app.stop()
    }

    @Test func onFailureRollbackPutsThePreviousVersionBackAndSaysSo() async throws {
        var web = quickService("web", deploy: #"[ "$ROLLGATE_VERSION" != bad ] || [ "$ROLLGATE_TARGET_ID" != web-2 ]"#)
        web.plan.onFailure = .rollback
        let app = try await startApp([web])
        let client = HTTPClient(port: app.server.port)
        #expect(try await finished(client, run: try await deploy(client, "web", "v1"))["status"] == .string("succeeded"))
        let run = try await finished(client, run: try await deploy(client, "web", "bad"))
        #expect(run["status"] == .string("failed"))
        #expect(run["rolled_back_to"] == .string("v1"))
        #expect(run["error"]?.string?.hasSuffix("; rolled back to v1") == true, "\(run["error"]?.string ?? "")")
        let services = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first
        #expect(services?["left_out"]?.int == 0, "web-2 is back in service")
        #expect(services?["last_good_version"] == .string("v1"))
        await app.stop()
    }
}
