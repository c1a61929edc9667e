import Testing
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore

/// Rolls on the traffic model (users sending a steady stream of requests through a modelled
/// ALB): zero requests may reach a down app, and never more than the allowed targets out.
@Suite struct TrafficModelRollTests {
    let targets = (1...3).map { Target(id: "i-\($0)", port: 80) }
    let clock = ManualClock()
    let store = try! Store.forTests()

    func plan(prepare: String? = nil) -> ServicePlan {
        ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(400), healthyTimeout: .seconds(60),
                    hookTimeout: .seconds(60), hooks: HookCommands(prepare: prepare, deploy: "deploy.sh"))
    }

    func roll(_ model: TrafficModel, _ plan: ServicePlan) async throws -> Roll.Outcome {
        _ = try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let executor = TrafficModelExecutor(model: model, clock: clock)
        return await Roll(run: run, plan: plan, loadBalancer: model, executor: executor, journal: store,
                          clock: clock, logger: .quiet).perform()
    }

    @Test func aPlainRollDropsNoRequest() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        #expect(try await roll(model, plan()) == .succeeded)
        clock.advance(by: .seconds(30))
        let requests = model.requests(until: clock.now)
        #expect(requests.count > 5000, "a steady stream all along the roll: \(requests.count)")
        #expect(model.droppedRequests == 0)
        #expect(model.maxOutOfService == 1)
        #expect(targets.allSatisfy { model.version(of: $0) == "v2" })
    }

    @Test func theModelCatchesABrokenRollThatStopsTheAppBeforeTheDrain() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        #expect(try await roll(model, plan(prepare: "stop-app")) == .succeeded, "the roll itself does not notice")
        #expect(model.droppedRequests > 0, "users did")
    }
}

/// Fast drain on the traffic model: the deploy hook starts once the app has been quiet for
/// `quiet` (after the load balancer stopped sending it requests), long before the group's
/// deregistration delay, and still no request is dropped.
@Suite struct FastDrainTests {
    let targets = (1...3).map { Target(id: "i-\($0)", port: 80) }
    let clock = ManualClock()
    let store = try! Store.forTests()

    func plan(check: String = "quiet-check", measureOnly: Bool = false) -> ServicePlan {
        var plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(400), healthyTimeout: .seconds(60),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh"))
        plan.fastDrain = FastDrain(check: check, quiet: .seconds(10), measureOnly: measureOnly)
        return plan
    }

    func roll(_ model: TrafficModel, check: String = "quiet-check", measureOnly: Bool = false) async throws -> (Roll.Outcome, Run, TrafficModelExecutor) {
        let plan = self.plan(check: check, measureOnly: measureOnly)
        _ = try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let executor = TrafficModelExecutor(model: model, clock: clock)
        let outcome = await Roll(run: run, plan: plan, loadBalancer: model, executor: executor, journal: store,
                                 clock: clock, logger: .quiet).perform()
        // As the dispatcher would: the plan's history reads finished runs.
        if outcome == .succeeded { try store.finish(run.id, .succeed, error: nil, at: clock.now) }
        return (outcome, try #require(try store.run(run.id)), executor)
    }

    /// Seconds each target spent out of service, as the run reports it.
    func outOfService(_ run: Run) -> [Double] {
        #expect(run.outages.map(\.target) == targets, "one outage per target, in roll order")
        return run.outages.map { Double($0.milliseconds ?? -1) / 1000 }
    }

    @Test func aFastDrainRollDropsNothingAndTakesQuietPlusHookPlusHealthInsteadOfTheDelay() async throws {
        let model = TrafficModel(targets: targets, clock: clock)   // delay 300 s, propagation 13 s
        let (outcome, run, _) = try await roll(model)
        #expect(outcome == .succeeded)
        clock.advance(by: .seconds(30))
        #expect(model.droppedRequests == 0)
        #expect(model.maxOutOfService == 1)
        #expect(targets.allSatisfy { model.version(of: $0) == "v2" })
        // Out: the 13 s the load balancer still sends requests, the quiet 10 s, the 5 s hook,
        // the 5 s health check, a poll or two: about 35 s, not 300.
        for seconds in outOfService(run) { #expect(seconds < 45, "out of service \(seconds) s") }
        let lines = try store.logs.map(\.text)
        #expect(lines.contains { $0.hasPrefix("fast drain: i-1 stayed quiet for 10s while the load balancer says draining; counted as drained") }, "\(lines)")
        // Each drain was quiet for its last 10 s or so of about 24 (13 s of propagation first).
        let shares = try store.drainIdleShares(service: "web")
        #expect(shares.count == 3)
        for share in shares { #expect(share > 0.3 && share < 0.6, "idle share \(share)") }
    }

    /// `measure_only`: the check runs every poll, but the drain waits for the load balancer
    /// (the whole deregistration delay); how much of it the app sat idle is recorded, and the
    /// plan prices fast drain from that instead of assuming an idle app.
    @Test func measureOnlyWaitsOutTheDelayAndRecordsHowMuchOfItWasIdle() async throws {
        var settings = TrafficModel.Settings()
        settings.deregistrationDelay = .seconds(60)
        let model = TrafficModel(targets: targets, clock: clock, settings: settings)
        let (outcome, run, _) = try await roll(model, measureOnly: true)
        #expect(outcome == .succeeded)
        #expect(model.droppedRequests == 0)
        for seconds in outOfService(run) { #expect(seconds >= 60, "waited out the delay: \(seconds) s") }
        let lines = try store.logs.map(\.text)
        #expect(!lines.contains { $0.contains("counted as drained") })
        #expect(lines.contains { $0.hasPrefix("fast drain (measure only): i-1 was quiet for the last ") }, "\(lines.suffix(20))")
        // Requests for the first 13 s (propagation), then idle until the delay ends: ~46 of ~60 s.
        let shares = try store.drainIdleShares(service: "web")
        #expect(shares.count == 3)
        for share in shares { #expect(share > 0.65 && share < 0.85, "idle share \(share)") }
        let idle = try #require(IdleShare(shares))
        let forecast = RollForecast(plan: plan(measureOnly: true), timing: GroupTiming(deregistrationDelay: .seconds(60)), targets: 3,
                                    history: try store.phaseTimes(service: "web"), idle: idle)
        // Measuring only: the drain is forecast at its measured length, and fast drain is
        // priced at the idle share of it less the quiet period and a poll.
        let drain = forecast.parts[0].expected
        #expect(drain >= .seconds(60))
        #expect(forecast.parts[0].from.contains("idle \(idle.percent)% of it (median of 3 measured)"))
        let advice = try #require(forecast.advice.first { $0.change == .fastDrain })
        #expect(advice.savesPerTarget == drain * idle.median - .seconds(11))
        #expect(advice.text.hasSuffix("(drains idle \(idle.percent)% of their time, 3 measured)"))
    }

    @Test func theDeployHookWaitsWhileRequestsKeepArriving() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        let (_, _, executor) = try await roll(model)
        // The first deploy began only after the load balancer stopped routing to i-1 (13 s
        // after DeregisterTargets) and 10 quiet seconds more.
        let checks = executor.recorded.filter { $0.command == "quiet-check" && $0.environment["ROLLGATE_TARGET_ID"] == "i-1" }
        #expect(checks.count >= 13 + 10, "checked every poll while draining: \(checks.count)")
        #expect(checks.allSatisfy { $0.environment["ROLLGATE_CHECK"] == "fast_drain" && $0.phase == .drain })
        let lines = try store.logs.map(\.text)
        #expect(lines.contains { $0.hasPrefix("fast drain: i-1 is not quiet yet") })
        #expect(model.droppedRequests == 0)
    }

    @Test func aCheckThatPassesAtOnceWouldDropRequestsWhichIsWhyQuietMatters() async throws {
        // A check that lies (always quiet) counts the target as drained after 10 s, while the
        // load balancer still sends it requests for 13 s: the model shows users' errors.
        let model = TrafficModel(targets: targets, clock: clock)
        let (outcome, _, _) = try await roll(model, check: "true")
        #expect(outcome == .succeeded)
        #expect(model.droppedRequests > 0)
    }

    @Test func anIPTargetThatKeepsDrainingIsRegisteredAgainOnceUnused() async throws {
        var settings = TrafficModel.Settings()
        settings.registerWhileDraining = .isIgnored
        settings.deregistrationDelay = .seconds(60)
        let model = TrafficModel(targets: targets, clock: clock, settings: settings)
        let (outcome, run, _) = try await roll(model)
        #expect(outcome == .succeeded)
        clock.advance(by: .seconds(30))
        #expect(model.droppedRequests == 0)
        #expect(targets.allSatisfy { model.version(of: $0) == "v2" })
        let lines = try store.logs.map(\.text)
        #expect(lines.contains("the load balancer keeps i-1 draining after RegisterTargets; waiting until it is unused to register it again"), "\(lines.suffix(20))")
        #expect(lines.contains("RegisterTargets i-1:80 again"))
        for seconds in outOfService(run) { #expect(seconds >= 60 && seconds < 80, "waits out the delay: \(seconds) s") }
    }
}

/// Batches on the traffic model: `max_unavailable: 2` of 6 targets takes two out at a time,
/// never three, drops nothing, and a failure settles the batch in hand before it stops.
@Suite struct BatchRollTests {
    let targets = (1...6).map { Target(id: "i-\($0)", port: 80) }
    let clock = ManualClock()
    let store = try! Store.forTests()

    func roll(_ model: TrafficModel, executor: (any HookExecutor)? = nil, fastDrain: Bool = true) async throws -> (Roll.Outcome, Run) {
        var plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(400), healthyTimeout: .seconds(60),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh"))
        plan.maxUnavailable = .count(2)
        if fastDrain { plan.fastDrain = FastDrain(check: "quiet-check", quiet: .seconds(10)) }
        _ = try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let outcome = await Roll(run: run, plan: plan, loadBalancer: model, executor: executor ?? TrafficModelExecutor(model: model, clock: clock),
                                 journal: store, clock: clock, logger: .quiet).perform()
        return (outcome, try #require(try store.run(run.id)))
    }

    @Test func twoAtATimeWithFastDrainDropsNothingAndNeverTakesThreeOut() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        let (outcome, run) = try await roll(model)
        #expect(outcome == .succeeded)
        clock.advance(by: .seconds(30))
        #expect(model.droppedRequests == 0)
        #expect(model.maxOutOfService == 2)
        #expect(targets.allSatisfy { model.version(of: $0) == "v2" })
        // Each target's steps stay its own, in order.
        for target in targets {
            #expect(run.steps.filter { $0.targetID == target.id }.map(\.phase) == [.drain, .deploy, .restore], "\(target.id)")
        }
        // Batches in plan order (inside a batch the two start in either order); each batch
        // starts after the one before is back.
        let outages = run.outages
        let batches = stride(from: 0, to: 6, by: 2).map { Set(outages[$0..<$0 + 2].map(\.target.id)) }
        #expect(batches == [["i-1", "i-2"], ["i-3", "i-4"], ["i-5", "i-6"]])
        for index in [2, 4] {
            #expect(min(outages[index].from, outages[index + 1].from) >= max(outages[index - 2].until!, outages[index - 1].until!))
        }
    }

    @Test func aRunResumedWithABatchOutGoesOnWithoutTakingMoreOut() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        var plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(400), healthyTimeout: .seconds(60),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh"))
        plan.maxUnavailable = .count(2)
        _ = try store.enqueue(service: "web", version: "v2", at: clock.now)
        let claimed = try #require(try store.claimNext(at: clock.now))
        // The first process froze the plan, took i-1 and i-2 out, and died while they drained.
        _ = try store.freezePlan(run: claimed.id, targets: targets)
        for target in targets.prefix(2) {
            try store.markOut(run: claimed.id, service: "web", target: target, phase: .drain, reason: "run 1", lease: try #require(claimed.lease), at: clock.now)
            _ = try store.beginStep(run: claimed.id, target: target, phase: .drain, at: clock.now)
            try await model.deregister(target)
        }
        clock.advance(by: .seconds(20))
        // The next start takes the run over as the dispatcher does: its steps in hand end as interrupted.
        let taken = try #require(try store.takeOver(owner: .test, lease: .seconds(15), excluding: [], isGone: { _ in true }).first)
        guard case .resume(let resumed) = try await Recovery(queue: store, clock: clock, executor: RecordingExecutor()).takeOver(taken) else {
            Issue.record("not resumed"); return
        }
        let outcome = await Roll(run: resumed, plan: plan, loadBalancer: model, executor: TrafficModelExecutor(model: model, clock: clock),
                                 journal: store, clock: clock, logger: .quiet).perform()
        #expect(outcome == .succeeded)
        clock.advance(by: .seconds(30))
        #expect(model.maxOutOfService == 2, "the two left out were the first batch: never a third")
        #expect(model.droppedRequests == 0)
        #expect(targets.allSatisfy { model.version(of: $0) == "v2" })
    }

    @Test func aFailureInABatchLetsTheOtherTargetFinishThenStops() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        let inner = TrafficModelExecutor(model: model, clock: clock)
        let executor = FailingDeploy(inner: inner, failOn: "i-4")
        let (outcome, run) = try await roll(model, executor: executor)
        guard case .failed(let failure) = outcome else { Issue.record("expected failure, got \(outcome)"); return }
        let message = failure.message
        #expect(message.contains("i-4"))
        #expect(run.outages.first { $0.target.id == "i-3" }?.until != nil, "i-3, in the same batch, was put back")
        #expect(run.outages.first { $0.target.id == "i-4" }?.until == nil, "i-4 stays out, left out with its reason")
        #expect(!run.steps.contains { ["i-5", "i-6"].contains($0.targetID) }, "the next batch was never started")
        #expect(try store.leftOut(service: "web").map(\.target.id) == ["i-4"])
        clock.advance(by: .seconds(30))
        #expect(model.droppedRequests == 0)
    }
}

/// Fails one target's deploy hook of v2 (exit 3), runs every other hook on the model.
final class FailingDeploy: HookExecutor {
    let inner: TrafficModelExecutor
    let failOn: String
    init(inner: TrafficModelExecutor, failOn: String) { self.inner = inner; self.failOn = failOn }

    func run(_ hook: HookInvocation, started: @escaping @Sendable (HookProcess) -> Void,
             output: @escaping @Sendable (LogLine.Stream, [String]) -> Void) async -> HookOutcome {
        if hook.phase == .deploy && hook.environment["ROLLGATE_TARGET_ID"] == failOn && hook.environment["ROLLGATE_VERSION"] == "v2" {
            return .exited(3)
        }
        return await inner.run(hook, started: started, output: output)
    }

    func endLeftover(_ process: HookProcess, of run: RunID) -> Int { 0 }
}

/// Canary with bake, and rollback (automatic and after a canary), on the traffic model.
@Suite struct CanaryAndRollbackTests {
    let targets = (1...4).map { Target(id: "i-\($0)", port: 80) }
    let clock = ManualClock()
    let store = try! Store.forTests()

    /// v1 succeeded before (the previous good version), then v2 is rolled.
    func roll(_ model: TrafficModel, canary: Canary? = nil, onFailure: OnFailure = .stop, failOn: String? = nil,
              promote: Bool = false) async throws -> (Roll.Outcome, Run, [HookInvocation]) {
        let earlier = try store.enqueue(service: "web", version: "v1", at: clock.now)
        _ = try store.claimNext(at: clock.now)
        try store.finish(earlier.id, .succeed, error: nil, at: clock.now)
        var plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(400), healthyTimeout: .seconds(60),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh"))
        plan.fastDrain = FastDrain(check: "quiet-check", quiet: .seconds(10))
        plan.canary = canary
        plan.onFailure = onFailure
        _ = try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        if promote { try store.requestPromote(run.id) }
        let inner = TrafficModelExecutor(model: model, clock: clock)
        let executor: any HookExecutor = failOn.map { FailingDeploy(inner: inner, failOn: $0) } ?? inner
        let outcome = await Roll(run: run, plan: plan, loadBalancer: model, executor: executor, journal: store,
                                 clock: clock, logger: .quiet).perform()
        return (outcome, try #require(try store.run(run.id)), inner.recorded)
    }

    @Test func aCanaryBakesThenTheRestFollow() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        let (outcome, run, hooks) = try await roll(model, canary: Canary(targets: 1, bake: .seconds(120), check: "canary-ok"))
        #expect(outcome == .succeeded)
        let outages = run.outages
        #expect(outages[1].from.since(outages[0].until!) >= .seconds(120), "the rest waited the whole bake")
        let checks = hooks.filter { $0.command == "canary-ok" }
        #expect(checks.count >= 100, "checked every poll while baking: \(checks.count)")
        #expect(checks.allSatisfy { $0.environment["ROLLGATE_CHECK"] == "canary" && $0.environment["ROLLGATE_CANARY_TARGETS"] == "i-1" })
        clock.advance(by: .seconds(30))
        #expect(model.droppedRequests == 0)
        #expect(targets.allSatisfy { model.version(of: $0) == "v2" })
    }

    @Test func aPromoteEndsTheBakeAtOnce() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        let (outcome, run, _) = try await roll(model, canary: Canary(targets: 1, bake: .seconds(3600)), promote: true)
        #expect(outcome == .succeeded)
        #expect(run.outages[1].from.since(run.outages[0].until!) < .seconds(5))
        #expect(try store.logs.contains { $0.text.hasPrefix("promoted after") })
    }

    @Test func aFailedCanaryCheckStopsTheRunAndTheRestIsNeverTouched() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        let (outcome, run, _) = try await roll(model, canary: Canary(targets: 1, bake: .seconds(300), check: "fail"))
        guard case .failed(let failure) = outcome else { Issue.record("expected failure, got \(outcome)"); return }
        let message = failure.message
        #expect(failure.code == .canaryCheckFailed)
        #expect(message.hasPrefix("canary check failed after 0s of the bake: fail: exit 1"), "\(message)")
        #expect(Set(run.steps.map(\.targetID)) == ["i-1"])
        #expect(model.version(of: targets[0]) == "v2", "on_failure: stop leaves the canary as it is")
        #expect(try store.logs.contains { $0.text == "error rate too high" && $0.phase == .verify }, "the check's output is in the log")
        clock.advance(by: .seconds(30))
        #expect(model.droppedRequests == 0)
    }

    @Test func aFailedCanaryIsRolledBackWithOnFailureRollback() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        let (outcome, run, hooks) = try await roll(model, canary: Canary(targets: 1, bake: .seconds(300), check: "fail"), onFailure: .rollback)
        guard case .failed(let failure) = outcome else { Issue.record("expected failure, got \(outcome)"); return }
        let message = failure.message
        #expect(message.hasSuffix("; rolled back to v1"), "\(message)")
        #expect(run.rollbackTo == "v1")
        #expect(targets.allSatisfy { model.version(of: $0) == "v1" })
        let rollbackDeploy = try #require(hooks.last { $0.phase == .deploy })
        #expect(rollbackDeploy.environment["ROLLGATE_VERSION"] == "v1" && rollbackDeploy.environment["ROLLGATE_ROLLBACK"] == "1")
        clock.advance(by: .seconds(30))
        #expect(model.droppedRequests == 0)
        #expect(model.maxOutOfService == 1)
    }

    @Test func aFailureOnTheThirdOfFourRollsTheFirstThreeBack() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        let (outcome, run, _) = try await roll(model, onFailure: .rollback, failOn: "i-3")
        guard case .failed(let failure) = outcome else { Issue.record("expected failure, got \(outcome)"); return }
        let message = failure.message
        #expect(failure.code == .hookFailed, "a rollback keeps the code of the failure that started it")
        #expect(message.contains("deploy hook failed on i-3: exit 3") && message.hasSuffix("; rolled back to v1"), "\(message)")
        #expect(targets.allSatisfy { model.version(of: $0) == "v1" }, "\(targets.map { model.version(of: $0) ?? "-" })")
        #expect(!run.steps.contains { $0.targetID == "i-4" }, "i-4 was never touched")
        // i-3 (left out) first, then i-1 and i-2.
        let rollbackDrains = run.steps.filter { $0.phase == .drain }.dropFirst(3).map(\.targetID)
        #expect(rollbackDrains == ["i-3", "i-1", "i-2"], "\(rollbackDrains)")
        #expect(try store.leftOut(service: "web").isEmpty, "i-3 is back in service")
        clock.advance(by: .seconds(30))
        #expect(model.droppedRequests == 0)
        #expect(model.maxOutOfService == 1)
    }

    @Test func withoutAnEarlierGoodVersionARollbackSaysSo() async throws {
        let model = TrafficModel(targets: targets, clock: clock)
        var plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(400), healthyTimeout: .seconds(60),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh"))
        plan.onFailure = .rollback
        _ = try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let executor = FailingDeploy(inner: TrafficModelExecutor(model: model, clock: clock), failOn: "i-1")
        let outcome = await Roll(run: run, plan: plan, loadBalancer: model, executor: executor, journal: store, clock: clock, logger: .quiet).perform()
        guard case .failed(let failure) = outcome else { Issue.record("expected failure, got \(outcome)"); return }
        let message = failure.message
        #expect(message.hasSuffix("; no earlier good version to roll back to"))
    }
}
