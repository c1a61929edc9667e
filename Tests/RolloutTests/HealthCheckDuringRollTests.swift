import Foundation
import Testing
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore
import Synchronization

/// A fake group whose health check can be read and changed (ModifyTargetGroup), every change
/// recorded; targets and waits are the fake load balancer's.
final class TunableGroup: LoadBalancer, HealthCheckTunable {
    let inner: FakeLoadBalancer
    let targetGroup = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
    private let state: Mutex<(current: HealthCheckSettings, changes: [HealthCheckSettings])>
    let refuse: Bool

    init(_ inner: FakeLoadBalancer, current: HealthCheckSettings, refuse: Bool = false) {
        self.inner = inner
        self.refuse = refuse
        state = Mutex((current, []))
    }

    var current: HealthCheckSettings { state.withLock { $0.current } }
    var changes: [HealthCheckSettings] { state.withLock { $0.changes } }

    func healthCheck() async throws -> HealthCheckSettings { current }
    func setHealthCheck(_ settings: HealthCheckSettings) async throws {
        if refuse { throw LoadBalancerError(code: "AccessDenied", message: "not authorized to perform: elasticloadbalancing:ModifyTargetGroup", isRetryable: false) }
        state.withLock { $0.current = settings; $0.changes.append(settings) }
    }
    func targets() async throws -> [(target: Target, health: TargetHealth)] { try await inner.targets() }
    func health(of target: Target) async throws -> TargetObservation { try await inner.health(of: target) }
    func deregister(_ target: Target) async throws { try await inner.deregister(target) }
    func register(_ target: Target) async throws { try await inner.register(target) }
}

/// `health_check_during_roll`: tightened for the roll, the group's own put back however the
/// run ends, and never taken for the group's own once tightened.
@Suite struct HealthCheckDuringRollTests {
    let targets = [Target(id: "i-a", port: 80), Target(id: "i-b", port: 80)]
    let clock = ManualClock()
    let store = try! Store.forTests()
    /// An ALB's defaults.
    let own = HealthCheckSettings(interval: .seconds(30), timeout: .seconds(5), healthyThreshold: 5)
    /// What `{interval: 5s, healthy_threshold: 2}` makes of them: the timeout must be shorter than the interval.
    let tight = HealthCheckSettings(interval: .seconds(5), timeout: .seconds(4), healthyThreshold: 2)

    var plan: ServicePlan {
        var plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(30), healthyTimeout: .seconds(20),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh"))
        plan.healthCheckDuringRoll = HealthCheckTightening(interval: .seconds(5), healthyThreshold: 2)
        return plan
    }

    func roll(_ group: TunableGroup, _ executor: RecordingExecutor = RecordingExecutor()) async throws -> (Roll.Outcome, Run) {
        try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let outcome = await Roll(run: run, plan: plan, loadBalancer: group, executor: executor, journal: store, clock: clock,
                                 logger: .quiet, context: RollContext(healthChecks: store)).perform()
        return (outcome, try #require(try store.run(run.id)))
    }

    func logText(_ run: Run) throws -> [String] { try store.logs(run: run.id, after: 0, limit: 10_000).map(\.text) }

    @Test func tightenedForTheRollAndPutBackAfterSuccess() async throws {
        let group = TunableGroup(FakeLoadBalancer(targets: targets), current: own)
        let (outcome, run) = try await roll(group)
        #expect(outcome == .succeeded)
        #expect(group.changes == [tight, own])
        #expect(group.current == own)
        #expect(try store.changedHealthChecks().isEmpty, "nothing left written down")
        let lines = try logText(run)
        #expect(lines.contains { $0.hasPrefix("ModifyTargetGroup: health check interval 5s, timeout 4s, healthy threshold 2 for the roll") })
        #expect(lines.contains("ModifyTargetGroup: putting the group's own health check back (interval 30s, timeout 5s, healthy threshold 5)"))
    }

    @Test func putBackAfterAFailure() async throws {
        let group = TunableGroup(FakeLoadBalancer(targets: targets), current: own)
        let executor = RecordingExecutor(outcome: { $0.phase == .deploy ? .exited(1) : .exited(0) })
        let (outcome, _) = try await roll(group, executor)
        guard case .failed = outcome else { Issue.record("expected a failure, got \(outcome)"); return }
        #expect(group.current == own && group.changes == [tight, own])
        #expect(try store.changedHealthChecks().isEmpty)
    }

    @Test func putBackAfterACancel() async throws {
        let group = TunableGroup(FakeLoadBalancer(targets: targets), current: own)
        let store = self.store
        let executor = RecordingExecutor(outcome: { hook in
            if hook.phase == .deploy { store.requestCancel(RunID(hook.environment["ROLLGATE_RUN_ID"]!)!) }
            return .exited(0)
        })
        let (outcome, _) = try await roll(group, executor)
        guard case .cancelled = outcome else { Issue.record("expected a cancel, got \(outcome)"); return }
        #expect(group.current == own && group.changes == [tight, own])
        #expect(try store.changedHealthChecks().isEmpty)
    }

    @Test func putBackWhenShutdownStopsTheRoll() async throws {
        let group = TunableGroup(FakeLoadBalancer(targets: targets), current: own)
        try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let started = Mutex(false)
        let executor = RecordingExecutor(outcome: { hook in
            if hook.phase == .deploy { started.withLock { $0 = true } }
            return .exited(0)
        })
        let task = Task {
            await Roll(run: run, plan: plan, loadBalancer: group, executor: executor, journal: store, clock: clock, logger: .quiet,
                       context: RollContext(healthChecks: store)).perform()
        }
        while !started.withLock({ $0 }) { await Task.yield() }
        task.cancel()
        #expect(await task.value == .interrupted)
        #expect(group.current == own, "a shutdown puts the group's own back (the resumed run tightens again)")
        #expect(try store.changedHealthChecks().isEmpty)
    }

    /// A crash after ModifyTargetGroup: the group has the tightened settings and the ledger
    /// the original. The resumed run must not take the tightened ones for the group's own.
    @Test func aResumedRunPutsBackTheOriginalNotWhatItFinds() async throws {
        let group = TunableGroup(FakeLoadBalancer(targets: targets), current: tight)
        _ = try store.noteOriginal(service: "web", targetGroup: group.targetGroup, run: 99, settings: own, at: clock.now)
        let (outcome, run) = try await roll(group)
        #expect(outcome == .succeeded)
        #expect(group.changes == [own], "already tight: no change before the roll, the original after")
        #expect(try store.changedHealthChecks().isEmpty)
        #expect(try logText(run).contains { $0.hasPrefix("health check already tightened for the roll") })
    }

    @Test func aGroupThatRefusesTheChangeFailsTheRunBeforeAnyTargetIsTouched() async throws {
        let fake = FakeLoadBalancer(targets: targets)
        let group = TunableGroup(fake, current: own, refuse: true)
        let (outcome, _) = try await roll(group)
        guard case .failed(let failure) = outcome else { Issue.record("expected a failure, got \(outcome)"); return }
        let message = failure.message
        #expect(failure.code == .healthCheckChange)
        #expect(message.contains("health_check_during_roll") && message.contains("AccessDenied") && message.contains("no target was touched"), "\(message)")
        #expect(!fake.calls.contains { if case .deregister = $0 { true } else { false } })
        #expect(group.current == own && group.changes.isEmpty)
        #expect(try store.changedHealthChecks().isEmpty, "ELB refused: nothing changed, nothing to put back or show")
    }

    /// At start (and every minute) a server puts back what a run that is over left changed;
    /// a run still running keeps its own.
    @Test func theSweepPutsBackWhereTheRunEndedAndLeavesRunningOnesAlone() async throws {
        let ended = TunableGroup(FakeLoadBalancer(targets: targets), current: tight)
        let running = TunableGroup(FakeLoadBalancer(targets: targets), current: tight)
        _ = try store.noteOriginal(service: "web", targetGroup: ended.targetGroup, run: 1, settings: own, at: clock.now)
        _ = try store.noteOriginal(service: "api", targetGroup: running.targetGroup, run: 2, settings: own, at: clock.now)
        _ = try store.noteOriginal(service: "gone", targetGroup: "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/1",
                                   run: 3, settings: own, at: clock.now)
        let results = await HealthCheckRestorer(ledger: store).putBackWhereRunsEnded(
            isRunning: { $0 == 2 }, group: { ["web": ended, "api": running][$0] })
        #expect(results.count == 3)
        #expect(ended.current == own && running.current == tight)
        #expect(try store.changedHealthChecks().map(\.service) == ["api", "gone"], "kept: the running run's and the unconfigured group's")
        #expect(results.contains { if case .notConfigured(let change) = $0 { change.service == "gone" } else { false } })
    }

    @Test func theTimeoutStaysShorterThanTheInterval() {
        let tightening = HealthCheckTightening(interval: .seconds(10), healthyThreshold: 2)
        #expect(tightening.applied(to: own).timeout == .seconds(5), "5 s is already shorter than 10 s")
        #expect(tightening.applied(to: HealthCheckSettings(interval: .seconds(30), timeout: .seconds(20), healthyThreshold: 5)).timeout == .seconds(9))
        #expect(HealthCheckTightening(interval: .seconds(5), healthyThreshold: 2).applied(to: own).timeout == .seconds(4))
    }
}
