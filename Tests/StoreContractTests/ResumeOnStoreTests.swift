import Testing
import Logging
import Rollout
import RolloutTesting
@testable import SQLiteStore
@testable import SQLStore

/// Resuming keeps the roll's promises, on the real store.
@Suite struct ResumeOnStoreTests {
    let db = TempDatabase()
    let clock = ManualClock()
    let targets = ["i-a", "i-b", "i-c"].map { Target(id: $0, port: 80) }

    /// A SIGTERM during prepare (or after it) leaves the target serving with its prepare step
    /// done: the resumed run goes on from the drain, and still checks that the others are
    /// healthy before taking it out.
    @Test(arguments: Engine.allCases) func aResumedDrainOfATargetStillServingRunsThePreflight(_ engine: Engine) async throws {
        let store = try makeStore(engine, db)
        _ = try store.enqueue(service: "web", version: "v2", reason: nil, requestedBy: "test", idempotencyKey: nil, at: clock.now)
        let claimed = try #require(try store.claimNext(at: clock.now))
        _ = try store.freezePlan(run: claimed.id, targets: targets)
        let prepare = try store.beginStep(run: claimed.id, target: targets[0], phase: .prepare, at: clock.now)
        try store.endStep(prepare, .succeed, error: nil, at: clock.now)
        let lb = FakeLoadBalancer(targets: targets, listedHealth: { $0.id == "i-c" ? TargetHealth(.unhealthy, reason: "Target.Timeout") : TargetHealth(.healthy) })
        var plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(30), healthyTimeout: .seconds(10),
                               hookTimeout: .seconds(60), hooks: HookCommands(prepare: "prepare.sh", deploy: "deploy.sh"))
        plan.maxUnavailable = .count(1)
        let resumed = try #require(try store.run(claimed.id))
        let outcome = await Roll(run: resumed, plan: plan, loadBalancer: lb, executor: RecordingExecutor(), journal: store,
                                 clock: clock, logger: BatchOnStoreTests.quiet).perform()
        guard case .failed(let failure) = outcome else { Issue.record("expected the preflight to stop the run, got \(outcome)"); return }
        let message = failure.message
        #expect(failure.code == .preflightUnhealthy)
        #expect(message.contains("preflight for i-a") && message.contains("i-c is unhealthy"), "\(message)")
        #expect(!lb.calls.contains(.deregister("i-a")), "i-a was never taken out: \(lb.calls)")
        #expect(lb.maxOutOfService == 0)
    }
}

/// Checks that must hold in the same transaction as the change they guard.
@Suite struct OneTransactionTests {
    let db = TempDatabase()
    let clock = ManualClock()

    @Test(arguments: Engine.allCases) func aLeftOutTargetIsNotForgottenWhileARunOfItsServiceRuns(_ engine: Engine) throws {
        let store = try makeStore(engine, db)
        let target = Target(id: "i-a", port: 80)
        _ = try store.enqueue(service: "web", version: "v1", reason: nil, requestedBy: "test", idempotencyKey: nil, at: clock.now)
        let first = try #require(try store.claimNext(at: clock.now))
        try store.markOut(run: first.id, service: "web", target: target, phase: .drain, reason: "run 1", lease: try #require(first.lease), at: clock.now)
        try store.finish(first.id, .fail, error: "deploy hook failed", at: clock.now)
        // The next run of the service starts (it includes the left-out target first)...
        _ = try store.enqueue(service: "web", version: "v2", reason: nil, requestedBy: "test", idempotencyKey: nil, at: clock.now)
        let second = try #require(try store.claimNext(at: clock.now))
        // ...so forgetting the target now is refused in the store's own transaction.
        #expect(throws: ServiceRolling.self) { _ = try store.forget(service: "web", targetID: "i-a", by: "ops", reason: nil, at: clock.now) }
        #expect(try store.leftOut(service: "web").map(\.target.id) == ["i-a"])
        try store.finish(second.id, .fail, error: "stopped", at: clock.now)
        #expect(try store.forget(service: "web", targetID: "i-a", by: "ops", reason: nil, at: clock.now)?.target == target)
        #expect(try store.leftOut(service: "web").isEmpty)
    }
}
