import Testing
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore
import Synchronization

/// A holder's local view of its lease, and resumes that keep every promise: an interrupted
/// rollback goes on where it stopped, a canary's bake goes on from what it had baked.
@Suite struct LeaseGuardTests {
    @Test func aHolderMayActOnlyWithinItsWindowOnTheMonotonicClock() {
        let clock = ManualClock()
        let holding = LeaseGuard(terms: LeaseTerms(lease: .seconds(15)), clock: clock, askedAt: clock.uptime)
        #expect(holding.terms.actingWindow == .seconds(10) && holding.terms.renewEvery == .seconds(3))
        clock.advance(by: .seconds(9))
        #expect(holding.mayAct)
        clock.advance(by: .seconds(1))
        #expect(!holding.mayAct, "ten seconds after the last renewal was asked: a third of the lease before anyone may take over")
        #expect(holding.refusal?.contains("last renewed 10s ago") == true, "\(holding.refusal ?? "")")
        holding.renewed(askedAt: clock.uptime)
        #expect(holding.mayAct)
        // The wall clock set back or forward (NTP, an operator) changes nothing.
        clock.setWallClock(by: .seconds(-3600))
        #expect(holding.mayAct)
        clock.setWallClock(by: .seconds(7200))
        #expect(holding.mayAct)
        holding.renewed(askedAt: clock.uptime - .seconds(30))
        #expect(holding.mayAct, "a late answer to an old renewal never shortens the window")
        holding.lose()
        holding.renewed(askedAt: clock.uptime)
        #expect(!holding.mayAct && holding.isLost, "lost is for good")
        #expect(throws: LeaseLost.self) { try holding.check(run: 1) }
    }
}

@Suite struct LocalDeadlineTests {
    let targets = [Target(id: "i-a", port: 80), Target(id: "i-b", port: 80)]
    let clock: ManualClock
    let store: Store

    init() throws {
        clock = ManualClock()
        store = try Store.forTests(leaseClock: clock)
    }

    /// The database stops answering renewals mid-hook (nothing renews): once the window has
    /// passed, the roll starts no hook and makes no load-balancer change, whatever the
    /// database would say.
    @Test func aHolderThatCannotRenewStopsActingAtItsLocalDeadline() async throws {
        try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let clock = self.clock
        let executor = RecordingExecutor(onRun: { hook in
            if hook.phase == .deploy { clock.advance(by: .seconds(11)) }   // a deploy hook that takes 11 s
        })
        let lb = FakeLoadBalancer(targets: targets)
        let holding = LeaseGuard(terms: LeaseTerms(lease: .seconds(15)), clock: clock, askedAt: clock.uptime)
        let plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(30), healthyTimeout: .seconds(20),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh", verify: "verify.sh"))
        let outcome = await LeaseGuard.$current.withValue(holding) {
            await Roll(run: run, plan: plan, loadBalancer: lb, executor: executor, journal: store.fenced(by: try! #require(run.lease)),
                       clock: clock, logger: .quiet).perform()
        }
        #expect(outcome == .leaseLost)
        #expect(executor.recorded.map { "\($0.phase.rawValue) \($0.environment["ROLLGATE_TARGET_ID"]!)" } == ["deploy i-a"], "no verify hook after the deadline")
        #expect(!lb.calls.contains(.register("i-a")) && !lb.calls.contains(.deregister("i-b")), "\(lb.calls)")
        #expect(try store.leftOut(service: "web").map(\.target.id) == ["i-a"], "i-a stays recorded as out for the next holder")
        #expect(try store.run(run.id)?.status == .running, "the run is not ended by a holder that may not act")
    }

    /// Renewals are timed on uptime: a wall clock set back an hour does not stop them.
    @Test func renewalsGoOnWhenTheWallClockIsSetBack() async throws {
        let (started, signal) = AsyncStream<Void>.makeStream()
        let release = AsyncStream<Void>.makeStream()
        let executor = RecordingExecutor(onRun: { _ in
            signal.yield()
            for await _ in release.stream { break }
        })
        try store.enqueue(service: "web", version: "v2", at: clock.now)
        let store = self.store, clock = self.clock, lb = FakeLoadBalancer(targets: targets)
        let dispatcher = Dispatcher(queue: store, clock: clock, logger: .quiet, owner: .test, liveness: StubLiveness(),
                                    recovery: Recovery(queue: store, clock: clock, executor: executor)) { run in
            .success(Roll(run: run, plan: ServicePlan(name: "web", pollInterval: .seconds(1), hooks: HookCommands(deploy: "deploy.sh")),
                          loadBalancer: lb, executor: executor, journal: store.fenced(by: run.lease!), clock: clock, logger: .quiet))
        }
        await dispatcher.start(tick: nil)
        var iterator = started.makeAsyncIterator()
        _ = await iterator.next()
        await dispatcher.renewLeases()
        clock.setWallClock(by: .seconds(-3600))
        clock.advance(by: .seconds(3))
        await dispatcher.renewLeases()
        let lease = try #require(try store.lease(of: 1))
        #expect(lease.until == clock.now.adding(.seconds(15)), "renewed although the wall clock went back an hour")
        #expect(lease.owner == .test && lease.epoch == 1)
        release.continuation.finish()
        await dispatcher.idle()
        #expect(try store.run(1)?.status == .succeeded)
        await dispatcher.stop()
    }
}

@Suite struct ResumeKeepsPromisesTests {
    let targets = [Target(id: "i-a", port: 80), Target(id: "i-b", port: 80), Target(id: "i-c", port: 80)]
    let clock = ManualClock()
    let store = try! Store.forTests()

    func plan(canary: Canary? = nil, onFailure: OnFailure = .stop) -> ServicePlan {
        var plan = ServicePlan(name: "web", pollInterval: .seconds(30), drainTimeout: .seconds(300), healthyTimeout: .seconds(300),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh", verify: "verify.sh"))
        plan.canary = canary
        plan.onFailure = onFailure
        return plan
    }

    /// The next start takes the run over as the dispatcher does.
    func takeOver(_ id: RunID) async throws -> Run {
        let taken = try #require(try store.takeOver(owner: .test, lease: .seconds(15), excluding: [], isGone: { _ in true }).first { $0.id == id })
        guard case .resume(let run) = try await Recovery(queue: store, clock: clock, executor: RecordingExecutor()).takeOver(taken) else {
            throw TestError("not resumed")
        }
        return run
    }

    struct TestError: Error { let text: String; init(_ text: String) { self.text = text } }

    @Test func anInterruptedRollbackGoesOnWithoutRerunningFinishedTargets() async throws {
        let earlier = try store.enqueue(service: "web", version: "v1", at: clock.now)
        _ = try store.claimNext(at: clock.now)
        try store.finish(earlier.id, .succeed, error: nil, at: clock.now)
        try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let lb = FakeLoadBalancer(targets: targets)
        // v2's verify fails on i-c; the rollback puts i-c back first, then is stopped (a
        // shutdown) right after i-a's rollback deploy.
        let first = RecordingExecutor(outcome: { hook in
            hook.phase == .verify && hook.environment["ROLLGATE_TARGET_ID"] == "i-c" && hook.environment["ROLLGATE_ROLLBACK"] == nil
                ? .exited(1) : .exited(0)
        }, onRun: { hook in
            if hook.phase == .deploy && hook.environment["ROLLGATE_ROLLBACK"] == "1" && hook.environment["ROLLGATE_TARGET_ID"] == "i-a" {
                withUnsafeCurrentTask { $0?.cancel() }
            }
        })
        // In a task of its own: the cancel (a shutdown) is that roll's alone.
        let firstRoll = Roll(run: run, plan: plan(onFailure: .rollback), loadBalancer: lb, executor: first,
                             journal: store.fenced(by: try #require(run.lease)), clock: clock, logger: .quiet)
        let stopped = await Task { await firstRoll.perform() }.value
        #expect(stopped == .interrupted)
        let callsBefore = lb.calls.count
        #expect(try store.plan(of: run.id).map { "\($0.target.id) \($0.rollback?.rawValue ?? "-")" } == ["i-a pending", "i-b pending", "i-c done"])

        let resumed = try await takeOver(run.id)
        #expect(resumed.rollbackCause?.contains("verify hook failed on i-c") == true)
        let second = RecordingExecutor()
        let outcome = await Roll(run: resumed, plan: plan(onFailure: .rollback), loadBalancer: lb, executor: second,
                                 journal: store.fenced(by: try #require(resumed.lease)), clock: clock, logger: .quiet).perform()
        guard case .failed(let failure) = outcome else { Issue.record("\(outcome)"); return }
        let message = failure.message
        #expect(failure.code == .hookFailed)
        #expect(message.hasPrefix("verify hook failed on i-c: exit 1"), "the failure that started the rollback is kept: \(message)")
        #expect(message.hasSuffix("; rolled back to v1"), "\(message)")
        let hooks = second.recorded.map { "\($0.phase.rawValue) \($0.environment["ROLLGATE_TARGET_ID"]!) v=\($0.environment["ROLLGATE_VERSION"]!) attempt \($0.environment["ROLLGATE_ATTEMPT"]!)" }
        #expect(hooks == ["deploy i-a v=v1 attempt 2", "verify i-a v=v1 attempt 1", "deploy i-b v=v1 attempt 1", "verify i-b v=v1 attempt 1"],
                "i-c was already back on v1: not drained or deployed again; i-a's interrupted deploy counts: \(hooks)")
        #expect(!lb.calls.dropFirst(callsBefore).contains { $0 == .deregister("i-c") || $0 == .register("i-c") },
                "i-c is not touched after the resume: \(lb.calls.dropFirst(callsBefore))")
        #expect(try store.leftOut(service: "web").isEmpty)
        #expect(try store.plan(of: run.id).allSatisfy { $0.rollback == .done })
        for target in targets { #expect(lb.isRegistered(target.id)) }
    }

    @Test func aResumedCanaryBakesOnlyWhatIsLeft() async throws {
        try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let lb = FakeLoadBalancer(targets: targets)
        let canary = Canary(targets: 1, bake: .seconds(600), check: "canary-ok")
        let checks = Counter()
        let first = RecordingExecutor(onRun: { hook in
            guard hook.environment["ROLLGATE_CHECK"] == "canary" else { return }
            if checks.next() == 4 { withUnsafeCurrentTask { $0?.cancel() } }   // a shutdown 4 polls (4 x 30 s) into the bake
        })
        let firstRoll = Roll(run: run, plan: plan(canary: canary), loadBalancer: lb, executor: first,
                             journal: store.fenced(by: try #require(run.lease)), clock: clock, logger: .quiet)
        let stopped = await Task { await firstRoll.perform() }.value
        #expect(stopped == .interrupted)
        #expect(try store.bakeElapsed(of: run.id) == .seconds(120))

        let resumed = try await takeOver(run.id)
        let second = RecordingExecutor()
        let outcome = await Roll(run: resumed, plan: plan(canary: canary), loadBalancer: lb, executor: second,
                                 journal: store.fenced(by: try #require(resumed.lease)), clock: clock, logger: .quiet).perform()
        #expect(outcome == .succeeded)
        #expect(try store.logs.contains { $0.text == "the bake had run 2m before the interruption; baking the remaining 8m" })
        #expect(second.recorded.filter { $0.environment["ROLLGATE_CHECK"] == "canary" }.count == 16, "8 minutes of 30 s polls")
        #expect(!second.recorded.contains { $0.environment["ROLLGATE_TARGET_ID"] == "i-a" && $0.environment["ROLLGATE_CHECK"] == nil },
                "the canary target is not rolled again")
    }
}

/// A load balancer whose every health poll waited for the account's API budget.
struct BudgetDelayedLoadBalancer: LoadBalancer {
    let inner: FakeLoadBalancer
    let wait: Duration
    func targets() async throws -> [(target: Target, health: TargetHealth)] { try await inner.targets() }
    func health(of target: Target) async throws -> TargetObservation {
        CallBudgetReport.current?.delayed("DescribeTargetHealth", wait)
        return try await inner.health(of: target)
    }
    func deregister(_ target: Target) async throws { try await inner.deregister(target) }
    func register(_ target: Target) async throws { try await inner.register(target) }
}

@Suite struct CallBudgetInTheLogTests {
    @Test func theRunsLogSaysWhenAPollWaitedForTheBudget() async throws {
        let clock = ManualClock()
        let store = try Store.forTests(leaseClock: clock)
        try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let plan = ServicePlan(name: "web", pollInterval: .seconds(1), hooks: HookCommands(deploy: "deploy.sh"))
        for (wait, logged) in [(Duration.seconds(2), true), (.milliseconds(100), false)] {
            let lb = BudgetDelayedLoadBalancer(inner: FakeLoadBalancer(targets: [Target(id: "i-a", port: 80)]), wait: wait)
            let before = try store.logs.count
            _ = await Roll(run: run, plan: plan, loadBalancer: lb, executor: RecordingExecutor(), journal: store, clock: clock, logger: .quiet).perform()
            let lines = try store.logs.dropFirst(before).map(\.text)
            #expect(lines.contains("DescribeTargetHealth delayed \(wait.humanText) by the AWS call budget (aws.describe_per_second / changes_per_second)") == logged,
                    "waits under half a second are not worth a line: \(wait)")
        }
    }
}
