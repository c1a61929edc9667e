@testable import Configuration
@testable import HTTPAPI
@testable import WireFormat
import Testing
import MicroHTTP
@testable import RollgateServer
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore

/// Locks, left-out targets, restore and forget through the router, on a manual clock; the
/// dispatcher is not started, so runs stay queued unless a test rolls them.
@Suite struct FleetAPITests {
    let directory = TempDirectory()
    let clock = ManualClock()
    let app: App
    let token = "ops-token-0123456789abcdef"

    init() throws {
        var config = Config(database: directory.path + "/fleet.db",
                            apiTokens: [APIToken(name: "ops", secret: token), APIToken(name: "oncall", secret: Self.oncall)],
                            services: [quickService("web")])
        config.publicRead = true
        app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                      environment: [:], logger: .quiet, clock: clock)
    }

    var auth: [String: String] { ["Authorization": "Bearer \(token)"] }
    static let oncall = "oncall-token-0123456789abcdef"

    /// Someone else's lock is not replaced by accident: 409 naming its holder, unless forced;
    /// the holder may change their own.
    @Test func aLockHeldBySomeoneElseIsReplacedOnlyWhenForced() async throws {
        let other = ["Authorization": "Bearer \(Self.oncall)"]
        #expect(await app.call("POST", "/api/v1/services/web/lock", headers: auth, body: #"{"reason":"migration","expires_in":"2h"}"#).status == 200)
        let refused = await app.call("POST", "/api/v1/services/web/lock", headers: other, body: #"{"reason":"incident"}"#)
        #expect(refused.status == 409 && json(refused)["error"]?["code"] == .string("locked_by_other"))
        #expect(json(refused)["error"]?["message"]?.string?.contains("locked by api:ops: migration") == true, "\(json(refused))")
        #expect(json(refused)["error"]?["hint"] == .string("pass \"force\": true to replace that lock") && json(refused)["error"]?["message"]?.string?.contains("force") == false,
                "what to do apart from what happened")
        #expect(try app.store.lock(service: "web", at: clock.now)?.reason == "migration", "the lock and its expiry are kept")
        #expect(await app.call("POST", "/api/v1/services/web/lock", headers: auth, body: #"{"reason":"migration, longer"}"#).status == 200,
                "the holder changes their own lock")
        let forced = await app.call("POST", "/api/v1/services/web/lock", headers: other, body: #"{"reason":"incident","force":true}"#)
        #expect(forced.status == 200 && json(forced)["locked_by"] == .string("api:oncall"), "\(json(forced))")
        #expect(await app.call("POST", "/api/v1/services/web/lock", headers: other, body: #"{"reason":"x","force":"yes"}"#).status == 422)
    }

    func deploy(_ body: String) async -> HTTPResponse {
        await app.call("POST", "/api/v1/deploys", headers: auth, body: body)
    }

    @Test func aLockedServiceRefusesDeploysWith423UntilUnlocked() async throws {
        #expect(await app.call("POST", "/api/v1/services/web/lock", body: #"{"reason":"x"}"#).status == 401, "locking needs a token")
        let locked = await app.call("POST", "/api/v1/services/web/lock", headers: auth, body: #"{"reason":"database migration"}"#)
        #expect(locked.status == 200)
        #expect(json(locked)["locked_by"] == .string("api:ops"))
        #expect(json(locked)["expires_at"] == .null)

        let refused = await deploy(#"{"service":"web","version":"v1"}"#)
        #expect(refused.status == 423)
        let error = json(refused)["error"]
        #expect(error?["code"] == .string("service_locked"))
        #expect(error?["message"] == .string("web is locked by api:ops: database migration (until unlocked)"))
        #expect(error?["hint"] == .string("pass \"wait_for_lock\": true to queue the deploy until the lock ends"))
        #expect(json(refused)["lock"]?["reason"] == .string("database migration"))
        #expect(try app.store.runs(RunFilter()).isEmpty, "a refused deploy queues nothing")

        let services = json(await app.call("GET", "/api/v1/services"))["services"]?.array?.first
        #expect(services?["lock"]?["reason"] == .string("database migration"))

        let unlocked = await app.call("DELETE", "/api/v1/services/web/lock", headers: auth)
        #expect(unlocked.status == 200)
        #expect(json(unlocked)["unlocked"]?["reason"] == .string("database migration"))
        #expect(await app.call("DELETE", "/api/v1/services/web/lock", headers: auth).status == 404)
        #expect(await deploy(#"{"service":"web","version":"v1"}"#).status == 202)
    }

    @Test func aLockExpiresByItselfOnTheClock() async throws {
        let locked = await app.call("POST", "/api/v1/services/web/lock", headers: auth, body: #"{"reason":"freeze","expires_in":"2h"}"#)
        #expect(locked.status == 200)
        #expect(await deploy(#"{"service":"web","version":"v1"}"#).status == 423)
        clock.advance(by: .seconds(7199))
        #expect(await deploy(#"{"service":"web","version":"v1"}"#).status == 423)
        clock.advance(by: .seconds(2))
        #expect(await deploy(#"{"service":"web","version":"v1"}"#).status == 202, "the lock ended by itself")
        #expect(json(await app.call("GET", "/api/v1/services"))["services"]?.array?.first?["lock"] == .null)
    }

    @Test func waitForLockQueuesTheDeployAndItIsClaimedOnceTheLockEnds() async throws {
        _ = await app.call("POST", "/api/v1/services/web/lock", headers: auth, body: #"{"reason":"freeze","expires_in":600}"#)
        let queued = await deploy(#"{"service":"web","version":"v7","wait_for_lock":true}"#)
        #expect(queued.status == 202)
        #expect(json(queued)["wait_for_lock"] == .bool(true))
        #expect(try app.store.claimNext(owner: .test, lease: .zero, at: clock.now) == nil, "not claimed while locked")
        clock.advance(by: .seconds(601))
        #expect(try app.store.claimNext(owner: .test, lease: .zero, at: clock.now)?.version == "v7")
    }

    @Test func badLockRequestsAreClearErrors() async {
        #expect(await app.call("POST", "/api/v1/services/nope/lock", headers: auth, body: #"{"reason":"x"}"#).status == 404)
        #expect(await app.call("POST", "/api/v1/services/web/lock", headers: auth, body: #"{}"#).status == 422)
        #expect(await app.call("POST", "/api/v1/services/web/lock", headers: auth, body: #"{"reason":"x","expires_in":"soon"}"#).status == 422)
        #expect(await app.call("POST", "/api/v1/services/web/lock", headers: auth, body: "[").status == 400)
        #expect(await deploy(#"{"service":"web","version":"v1","wait_for_lock":"yes"}"#).status == 422)
    }

    /// Leaves web-2 out as a failed run would have.
    func leaveOut(_ id: String) throws -> RunID {
        guard case .created(let run, _) = try app.store.enqueue(service: "web", version: "bad", reason: nil, requestedBy: "t",
                                                                idempotencyKey: nil, at: clock.now) else { throw TestFailure("not queued") }
        let lease = try app.store.claimNext(owner: .test, lease: .seconds(60), at: clock.now)?.lease
        try app.store.markOut(run: run.id, service: "web", target: Target(id: id, port: 8080), phase: .deploy,
                              reason: "deploy hook failed", lease: lease!, at: clock.now)
        try app.store.finish(run.id, .fail, error: "deploy hook failed", at: clock.now)
        return run.id
    }

    @Test func restoreQueuesARunThatPutsTheTargetBackWithoutHooks() async throws {
        #expect(await app.call("POST", "/api/v1/services/web/targets/web-2/restore", headers: auth).status == 404, "not left out")
        let failed = try leaveOut("web-2")
        #expect(await app.call("POST", "/api/v1/services/web/targets/web-2/restore").status == 401)
        let response = await app.call("POST", "/api/v1/services/web/targets/web-2/restore", headers: auth)
        #expect(response.status == 202)
        let run = json(response)
        #expect(run["kind"] == .string("restore"))
        #expect(run["restore_target"] == .string("web-2"))
        #expect(run["version"] == .string("bad"), "the version the target was left with")
        #expect(run["reason"]?.string?.contains("left out by run \(failed)") == true)
        #expect(try app.store.serviceSummary("web").lastGoodVersion == nil, "a restore is not a deploy")
    }

    @Test func forgetDropsALeftOutTargetForGood() async throws {
        _ = try leaveOut("web-3")
        #expect(try app.store.leftOut(service: "web").map(\.target.id) == ["web-3"])
        #expect(await app.call("POST", "/api/v1/services/web/targets/web-3/forget", headers: auth, body: #"{"why":"gone"}"#).status == 422,
                "an unknown key is refused")
        let response = await app.call("POST", "/api/v1/services/web/targets/web-3/forget", headers: auth, body: #"{"reason":"instance terminated"}"#)
        #expect(response.status == 200)
        #expect(json(response)["forgotten"]?["target_id"] == .string("web-3"))
        #expect(json(response)["reason"] == .string("instance terminated"))
        let event = try app.store.events(after: 0).last
        #expect(event?.event == .targetForgotten && event?.detail?.hasSuffix(": instance terminated") == true, "\(String(describing: event))")
        #expect(try app.store.leftOut(service: "web").isEmpty)
        #expect(await app.call("POST", "/api/v1/services/web/targets/web-3/forget", headers: auth).status == 404)
    }

    @Test func duringShutdownWritesAre503WithRetryAfterAndReadsStillAnswer() async {
        app.shutdown.begin()
        let refused = await deploy(#"{"service":"web","version":"v1"}"#)
        #expect(refused.status == 503)
        #expect(refused.header("retry-after") == "5")
        #expect(json(refused)["error"]?["code"] == .string("shutting_down"))
        #expect(await app.call("GET", "/api/v1/runs").status == 200)
    }
}
