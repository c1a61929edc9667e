@testable import Configuration
@testable import HTTPAPI
@testable import Hooks
@testable import Integrations
@testable import Page
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
@testable import RollgateServer
import Rollout
import RolloutTesting

/// The API through its router, without a socket; the dispatcher is not started, so runs stay queued.
@Suite struct APITests {
    let directory = TempDirectory()
    let app: App
    let token = "ci-token-0123456789abcdef"

    init() throws {
        var config = Config(database: directory.path + "/api.db", apiTokens: [APIToken(name: "ci", secret: token)],
                            services: [quickService("web"), quickService("api")])
        // These tests are about writes and answers; who may read is AccessTests' subject.
        config.publicRead = true
        app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                      environment: [:], logger: .quiet)
    }

    var auth: [String: String] { ["Authorization": "Bearer \(token)"] }

    func deploy(_ body: String, headers: [String: String]? = nil) async -> HTTPResponse {
        await app.call("POST", "/api/v1/deploys", headers: headers ?? auth, body: body)
    }

    @Test func aDeployIsQueuedAndAnsweredWithTheRun() async throws {
        let response = await deploy(#"{"service":"web","version":"v42","reason":"release"}"#)
        #expect(response.status == 202)
        #expect(response.header("location") == "/api/v1/runs/1")
        let run = json(response)
        #expect(run["id"] == .number(1))
        #expect(run["service"] == .string("web"))
        #expect(run["version"] == .string("v42"))
        #expect(run["reason"] == .string("release"))
        #expect(run["status"] == .string("queued"))
        #expect(run["requested_by"] == .string("api:ci"))
        for key in ["started_at", "finished_at", "error"] { #expect(run[key] == .null, "\(key) is present and null") }
        #expect(run["steps"] == .array([]))
        let created = try #require(run["created_at"]?.string)
        #expect(created.count == 24 && created.hasSuffix("Z") && created.contains("."), "RFC 3339 UTC with milliseconds: \(created)")
        #expect(json(await app.call("GET", "/api/v1/runs/1")) == run)
    }

    @Test func writesNeedAValidBearerToken() async throws {
        let missing = await deploy(#"{"service":"web","version":"v1"}"#, headers: [:])
        #expect(missing.status == 401)
        #expect(json(missing)["error"]?["code"] == .string("unauthorized"))
        #expect(await deploy(#"{"service":"web","version":"v1"}"#, headers: ["Authorization": "Bearer wrong"]).status == 401)
        #expect(await deploy(#"{"service":"web","version":"v1"}"#, headers: ["Authorization": "Basic \(token)"]).status == 401)
        #expect(await app.call("POST", "/api/v1/runs/1/cancel").status == 401)
        #expect(await app.call("GET", "/api/v1/runs").status == 200, "reads need no token")
        #expect(try app.store.runs(.init()).isEmpty, "nothing was stored")
    }

    @Test(arguments: [
        ("", 400, "invalid_json"),
        ("{not json", 400, "invalid_json"),
        ("[1,2]", 400, "invalid_json"),
        ("\"web\"", 400, "invalid_json"),
        (#"{"version":"v1"}"#, 422, "missing_field"),
        (#"{"service":"web"}"#, 422, "missing_field"),
        (#"{"service":"web","version":""}"#, 422, "missing_field"),
        (#"{"service":"web","version":42}"#, 422, "invalid_field"),
        (#"{"service":["web"],"version":"v1"}"#, 422, "invalid_field"),
        (#"{"service":"nope","version":"v1"}"#, 404, "unknown_service"),
        (#"{"service":"web","version":"v1; rm -rf /"}"#, 422, "invalid_version"),
        (#"{"service":"web","version":"$(id)"}"#, 422, "invalid_version"),
        (#"{"service":"web","version":"v1","reason":7}"#, 422, "invalid_field"),
        (#"{"service":"web","version":"--help"}"#, 422, "invalid_version"),
        (#"{"service":"web","version":"../../etc/passwd"}"#, 422, "invalid_version"),
        (#"{"service":"web","version":"v1/../x"}"#, 422, "invalid_version"),
        (#"{"service":"web","version":"v1","reason":"line\u0000two"}"#, 422, "invalid_field"),
        (#"{"service":"web","version":"v1","reason":"bell\u0007"}"#, 422, "invalid_field"),
        (#"{"service":"web","version":"v1","colour":"red"}"#, 422, "unknown_key"),
        (#"{"service":"web","version":"v1","version":"v2"}"#, 422, "duplicate_key"),
        (#"{"service":"web","version":"v1","requested_by":"alice"}"#, 403, "not_a_bot"),
    ])
    func badDeploysGetA4xxAndStoreNothing(body: String, status: Int, code: String) async throws {
        let response = await deploy(body)
        #expect(response.status == status)
        #expect(response.header("content-type") == "application/json")
        #expect(json(response)["error"]?["code"] == .string(code))
        #expect(json(response)["error"]?["message"]?.string?.isEmpty == false)
        #expect(try app.store.runs(.init()).isEmpty)
    }

    @Test func idempotencyKeyReturnsTheSameRunAndRefusesADifferentDeploy() async throws {
        let headers = auth.merging(["Idempotency-Key": "push-123"]) { a, _ in a }
        let first = await deploy(#"{"service":"web","version":"v1"}"#, headers: headers)
        let again = await deploy(#"{"service":"web","version":"v1"}"#, headers: headers)
        #expect(first.status == 202 && again.status == 202)
        #expect(json(again)["id"] == json(first)["id"])
        #expect(again.header("idempotent-replayed") == "true")
        let other = await deploy(#"{"service":"web","version":"v2"}"#, headers: headers)
        #expect(other.status == 422)
        #expect(json(other)["error"]?["code"] == .string("idempotency_key_reused"))
        let otherReason = await deploy(#"{"service":"web","version":"v1","reason":"different"}"#, headers: headers)
        #expect(otherReason.status == 422, "the same key with another reason is not a silent replay")
        #expect(try app.store.runs(.init()).count == 1)
    }

    @Test func anIdempotencyKeyBelongsToTheTokenThatSentIt() async throws {
        let config = Config(database: directory.path + "/two.db",
                            apiTokens: [APIToken(name: "ci", secret: token), APIToken(name: "bot", secret: "bot-token-0123456789abc", bot: true)],
                            services: [quickService("web")])
        let app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                          environment: [:], logger: .quiet)
        let first = await app.call("POST", "/api/v1/deploys", headers: auth.merging(["Idempotency-Key": "k1"]) { a, _ in a },
                                   body: #"{"service":"web","version":"v1"}"#)
        let bot = ["Authorization": "Bearer bot-token-0123456789abc", "Idempotency-Key": "k1"]
        let second = await app.call("POST", "/api/v1/deploys", headers: bot, body: #"{"service":"web","version":"v1","requested_by":"alice"}"#)
        #expect(first.status == 202 && second.status == 202)
        #expect(json(first)["id"] != json(second)["id"], "another token's key is another key")
        #expect(json(second)["requested_by"] == .string("alice (via api:bot)"), "a bot deploys on a person's behalf")
    }

    @Test func aTokenPastItsWriteRateGets429WithRetryAfter() async throws {
        var config = Config(database: directory.path + "/rate.db", apiTokens: [APIToken(name: "ci", secret: token)],
                            services: [quickService("web")])
        config.writeRate = (perSecond: 1, burst: 3)
        let clock = ManualClock()
        let app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                          environment: [:], logger: .quiet, clock: clock)
        for version in 1...3 {
            #expect(await app.call("POST", "/api/v1/deploys", headers: auth, body: #"{"service":"web","version":"v\#(version)"}"#).status == 202)
        }
        let limited = await app.call("POST", "/api/v1/deploys", headers: auth, body: #"{"service":"web","version":"v4"}"#)
        #expect(limited.status == 429)
        #expect(limited.header("retry-after") == "1")
        #expect(json(limited)["error"]?["code"] == .string("rate_limited"))
        clock.advance(by: .seconds(1))
        #expect(await app.call("POST", "/api/v1/deploys", headers: auth, body: #"{"service":"web","version":"v4"}"#).status == 202)
    }

    @Test func runsAreListedNewestFirstWithFiltersAndCursorPaging() async throws {
        for (service, version) in [("web", "v1"), ("api", "v1"), ("web", "v2"), ("api", "v2"), ("web", "v3")] {
            #expect(await deploy(#"{"service":"\#(service)","version":"\#(version)"}"#).status == 202)
        }
        let page1 = json(await app.call("GET", "/api/v1/runs?limit=2"))
        #expect(page1["runs"]?.array?.compactMap { $0["id"]?.int } == [5, 4])
        let cursor = try #require(page1["next_cursor"]?.string)
        let page2 = json(await app.call("GET", "/api/v1/runs?limit=2&cursor=\(cursor)"))
        #expect(page2["runs"]?.array?.compactMap { $0["id"]?.int } == [3, 2])
        let page3 = json(await app.call("GET", "/api/v1/runs?limit=2&cursor=\(page2["next_cursor"]!.string!)"))
        #expect(page3["runs"]?.array?.compactMap { $0["id"]?.int } == [1])
        #expect(page3["next_cursor"] == .null)
        #expect(json(await app.call("GET", "/api/v1/runs?service=api"))["runs"]?.array?.compactMap { $0["id"]?.int } == [4, 2])
        #expect(json(await app.call("GET", "/api/v1/runs?status=queued"))["runs"]?.array?.compactMap { $0["id"]?.int } == [5, 4])
        #expect(json(await app.call("GET", "/api/v1/runs?status=superseded"))["runs"]?.array?.count == 3)
        for bad in ["status=paused", "limit=0", "limit=201", "limit=x", "cursor=-1", "cursor=abc"] {
            let response = await app.call("GET", "/api/v1/runs?\(bad)")
            #expect(response.status == 400, "\(bad)")
        }
    }

    /// The plan of a simulated service: its drain and health pass as the group's settings,
    /// three batches of one, the hooks unknown until the service has rolled.
    @Test func aServicesPlanIsItsForecastAndAnUnknownServiceIsA404() async throws {
        let plan = json(await app.call("GET", "/api/v1/services/web/plan"))
        #expect(plan["targets"] == .number(3) && plan["batches"] == .number(3) && plan["batch_size"] == .number(1))
        #expect(plan["group"]?["deregistration_delay_s"] == .number(0.3) && plan["group"]?["health_check_interval_s"] == .number(0.2))
        #expect(plan["out_of_service_per_target_s"] == .number(0.5) && plan["roll_s"] == .number(1.5), "\(plan.text)")
        #expect(plan["bound_by"] == .string("drain"))
        #expect(plan["parts"]?.array?.map { $0["name"]?.string ?? "" } == ["drain", "hooks", "health"])
        #expect(plan["summary"]?.array?.first == .string("web: 3 targets, 1 at a time (3 batches)"))
        #expect(plan["history"] == .object([]))
        #expect(plan["drain_idle"] == .null, "no drain measured yet")
        let unknown = await app.call("GET", "/api/v1/services/nope/plan")
        #expect(unknown.status == 404 && json(unknown)["error"]?["code"] == .string("unknown_service"))
    }

    /// The store's port error, whichever engine raised it: one that may pass is a 503 with
    /// Retry-After, one that will not a 500; the engine's words reach the client, never the
    /// statement or its values (they name tables, and may carry a version or a token).
    @Test func aDatabaseErrorReachesTheClientWithoutItsStatement() {
        struct Fault: StoreFault, CustomStringConvertible {
            let mayPassLater: Bool
            var isUniqueViolation: Bool { false }
            var summary: String { "database is locked" }
            var description: String { "database is locked (in: INSERT INTO runs (service, version) VALUES ('web', 'secret-v1'))" }
        }
        let request = HTTPRequest(method: "POST", path: "/api/v1/deploys", query: [:], headers: [:], body: [])
        let busy = app.api.answer(Fault(mayPassLater: true), to: request)
        #expect(busy.status == 503 && busy.header("retry-after") == "5")
        #expect(json(busy)["error"]?["code"] == .string("database_unavailable"))
        let refused = app.api.answer(Fault(mayPassLater: false), to: request)
        #expect(refused.status == 500 && json(refused)["error"]?["code"] == .string("database_refused"))
        for response in [busy, refused] {
            let text = String(decoding: response.body, as: UTF8.self)
            #expect(text.contains("database is locked") && !text.contains("INSERT") && !text.contains("secret-v1"), "\(text)")
        }
    }

    @Test func unknownRunsAndBadIdsAreClear() async {
        #expect(await app.call("GET", "/api/v1/runs/99").status == 404)
        #expect(json(await app.call("GET", "/api/v1/runs/99"))["error"]?["code"] == .string("run_not_found"))
        #expect(await app.call("GET", "/api/v1/runs/abc").status == 400)
        #expect(await app.call("GET", "/api/v1/runs/-1").status == 400)
        #expect(await app.call("GET", "/api/v1/runs/99999999999999999999999").status == 400)
        #expect(await app.call("GET", "/api/v1/runs/99/logs").status == 404)
        #expect(await app.call("GET", "/api/v1/nothing").status == 404)
        #expect(await app.call("DELETE", "/api/v1/runs/1").status == 405)
    }

    @Test func aQueuedRunCanBeCancelledOnce() async {
        _ = await deploy(#"{"service":"web","version":"v1"}"#)
        let cancelled = await app.call("POST", "/api/v1/runs/1/cancel", headers: auth)
        #expect(cancelled.status == 202)
        #expect(json(cancelled)["status"] == .string("cancelled"))
        #expect(await app.call("POST", "/api/v1/runs/1/cancel", headers: auth).status == 409)
    }

    @Test func servicesShowLastGoodVersionLockAndTargets() async throws {
        let services = json(await app.call("GET", "/api/v1/services"))["services"]?.array ?? []
        #expect(services.compactMap { $0["name"]?.string } == ["web", "api"])
        let web = services[0]
        #expect(web["last_good_version"] == .null)
        #expect(web["lock"] == .null)
        #expect(web["targets"]?.array?.compactMap { $0["id"]?.string } == ["web-1", "web-2", "web-3"])
        #expect(web["targets"]?.array?.allSatisfy { $0["state"] == .string("healthy") } == true)
    }

    @Test func healthAndTheStatusPageAnswer() async {
        let health = json(await app.call("GET", "/healthz"))
        #expect(health["status"] == .string("ok") && health["database"] == .string("writable"), "\(health.text)")
        #expect(health["replica"] == .string(app.store.replica) && app.store.replica == ProcessIdentity().host, "the host name by default")
        let page = await app.call("GET", "/")
        #expect(page.status == 200)
        #expect(page.header("content-type") == "text/html; charset=utf-8")
        let html = String(decoding: page.body, as: UTF8.self)
        #expect(html.contains("<table id=\"services\">") && html.contains("web-1"))
        #expect(!html.contains("<!-- rollgate:state -->"))
        #expect(await app.call("GET", "/status.js").header("content-type") == "text/javascript; charset=utf-8")
        #expect(await app.call("GET", "/../Package.swift").status != 200)
        #expect(await app.call("GET", "/api/v2/runs").status == 404)
    }

    @Test func tokensGetScopesAndReadsAreClosedOffLoopback() async throws {
        var config = Config(listen: ListenAddress(host: "0.0.0.0", port: 8080), database: directory.path + "/scopes.db",
                            apiTokens: [APIToken(name: "viewer", secret: "viewer-token-0123456789", scopes: [.read]),
                                        APIToken(name: "ci", secret: "ci-token-0123456789abc", scopes: [.deploy]),
                                        APIToken(name: "ops", secret: "ops-token-0123456789abc")],
                            services: [quickService("web")])
        var app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                          environment: [:], logger: .quiet)
        let viewer = ["Authorization": "Bearer viewer-token-0123456789"]
        let ci = ["Authorization": "Bearer ci-token-0123456789abc"]
        let ops = ["Authorization": "Bearer ops-token-0123456789abc"]
        #expect(await app.call("GET", "/api/v1/runs").status == 401, "not on loopback: reads need a token")
        #expect(await app.call("GET", "/").status == 401)
        #expect(await app.call("GET", "/metrics").status == 401)
        #expect(await app.call("GET", "/healthz").status == 200, "liveness stays open")
        #expect(await app.call("GET", "/api/v1/runs", headers: viewer).status == 200)
        #expect(await app.call("GET", "/api/v1/runs", headers: ci).status == 403, "a deploy-only token does not read")
        #expect(await app.call("POST", "/api/v1/deploys", headers: viewer, body: #"{"service":"web","version":"v1"}"#).status == 403)
        #expect(await app.call("POST", "/api/v1/deploys", headers: ci, body: #"{"service":"web","version":"v1"}"#).status == 202)
        #expect(await app.call("POST", "/api/v1/runs/1/cancel", headers: ci).status == 202)
        let lock = await app.call("POST", "/api/v1/services/web/lock", headers: ci, body: #"{"reason":"x"}"#)
        #expect(lock.status == 403 && json(lock)["error"]?["message"]?.string?.contains("no admin scope") == true)
        #expect(await app.call("POST", "/api/v1/services/web/lock", headers: ops, body: #"{"reason":"x"}"#).status == 200, "no scopes listed: all of them")
        config.publicRead = true
        config.database = directory.path + "/public.db"
        app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory, environment: [:], logger: .quiet)
        #expect(await app.call("GET", "/api/v1/runs").status == 200, "public_read: true opens reads")
    }

    @Test func aHeaderWithAControlCharacterIsRefusedNotTruncated() async throws {
        let headers = auth.merging(["Idempotency-Key": "key\u{0}more"]) { a, _ in a }
        let response = await deploy(#"{"service":"web","version":"v1"}"#, headers: headers)
        #expect(response.status == 400)
        #expect(json(response)["error"]?["code"] == .string("invalid_header"))
        #expect(try app.store.runs(.init()).isEmpty)
    }

    @Test func durationsReadAsAPersonWouldSayThem() {
        #expect(Duration.milliseconds(304).readable == "304 ms")
        #expect(Duration.milliseconds(1512).readable == "1.5 s")
        #expect(Duration.milliseconds(18075).readable == "18 s")
        #expect(Duration.seconds(125).readable == "2 min 5 s")
        #expect(Duration.seconds(120).readable == "2 min")
        #expect(Duration.seconds(3780).readable == "1 h 3 min")
    }
}
