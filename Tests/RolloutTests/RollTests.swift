import Logging
import Testing
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore
import Synchronization

@Suite struct RollTests {
    let targets = [Target(id: "i-c", port: 80), Target(id: "i-a", port: 80), Target(id: "i-b", port: 80)]
    let clock = ManualClock()
    let store = try! Store.forTests()

    func plan(prepare: String? = nil, verify: String? = "verify.sh") -> ServicePlan {
        ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(30), healthyTimeout: .seconds(20),
                    hookTimeout: .seconds(60), hooks: HookCommands(prepare: prepare, deploy: "deploy.sh", verify: verify))
    }

    func roll(_ lb: FakeLoadBalancer, _ executor: RecordingExecutor, plan: ServicePlan? = nil) async throws -> (Roll.Outcome, Run) {
        let queued = try store.enqueue(service: "web", version: "v42", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        #expect(run.id == queued.id)
        let roll = Roll(run: run, plan: plan ?? self.plan(), loadBalancer: lb, executor: executor, journal: store,
                        clock: clock, logger: .quiet)
        return (await roll.perform(), try #require(try store.run(run.id)))
    }

    /// The calls that change or wait on one target, in order, without the polls.
    func actions(_ lb: FakeLoadBalancer) -> [String] {
        lb.calls.compactMap { call in
            switch call {
            case .deregister, .register: return call.description
            default: return nil
            }
        }
    }

    @Test func rollsEveryTargetOneAtATimeInStableOrder() async throws {
        let lb = FakeLoadBalancer(targets: targets)
        let executor = RecordingExecutor()
        let (outcome, run) = try await roll(lb, executor)
        #expect(outcome == .succeeded)
        #expect(actions(lb) == ["deregister i-a", "register i-a", "deregister i-b", "register i-b", "deregister i-c", "register i-c"])
        #expect(lb.maxOutOfService == 1)
        #expect(executor.recorded.map { "\($0.phase.rawValue) \($0.environment["ROLLGATE_TARGET_ID"]!)" } ==
                ["deploy i-a", "verify i-a", "deploy i-b", "verify i-b", "deploy i-c", "verify i-c"])
        #expect(run.steps.map { "\($0.targetID) \($0.phase.rawValue) \($0.status.rawValue)" } == [
            "i-a drain succeeded", "i-a deploy succeeded", "i-a verify succeeded", "i-a restore succeeded",
            "i-b drain succeeded", "i-b deploy succeeded", "i-b verify succeeded", "i-b restore succeeded",
            "i-c drain succeeded", "i-c deploy succeeded", "i-c verify succeeded", "i-c restore succeeded",
        ])
        for target in ["i-a", "i-b", "i-c"] { #expect(lb.isRegistered(target)) }
    }

    /// Every DescribeTargetHealth costs a token of the account's shared budget: none is spent on
    /// an answer the roll already has. The plan's listing serves the first preflight, the
    /// preflight's answer serves the drain, and no poll goes the moment after a change (a
    /// target just deregistered is draining, one just registered is `initial`).
    @Test func noCallIsSpentOnAnAnswerTheRollAlreadyHas() async throws {
        let lb = FakeLoadBalancer(targets: Array(targets.prefix(2)))
        let (outcome, _) = try await roll(lb, RecordingExecutor())
        #expect(outcome == .succeeded)
        #expect(lb.calls.map(\.description) == [
            "targets",                                   // the plan, and i-a's preflight
            "deregister i-a", "health i-a", "health i-a", // draining, unused
            "register i-a", "health i-a", "health i-a",   // initial, healthy
            "targets",                                   // i-c's preflight
            "deregister i-c", "health i-c", "health i-c",
            "register i-c", "health i-c", "health i-c",
        ])
        // Each wait's first poll went one poll interval (1 s) after its change.
        #expect(clock.sleeps.prefix(2) == [.seconds(1), .seconds(1)])
    }

    /// A prepare hook runs between the preflight and the drain: the target's state is asked again.
    @Test func aHookBetweenPreflightAndDrainMeansAskingAgain() async throws {
        let lb = FakeLoadBalancer(targets: [targets[1]])
        let (outcome, _) = try await roll(lb, RecordingExecutor(), plan: plan(prepare: "prepare.sh"))
        #expect(outcome == .succeeded)
        #expect(lb.calls.prefix(3).map(\.description) == ["targets", "health i-a", "deregister i-a"])
    }

    @Test func hooksStartOnlyAfterTheDrainAndGetTheirEnvironment() async throws {
        let lbBox = Box<FakeLoadBalancer>()
        let executor = RecordingExecutor(onRun: { hook in
            guard hook.phase == .deploy, let lb = lbBox.value else { return }
            let id = hook.environment["ROLLGATE_TARGET_ID"]!
            // At the deploy hook the target is deregistered and was seen unused.
            #expect(!lb.isRegistered(id))
            #expect(lb.calls.last == .health(id))
        })
        let lb = FakeLoadBalancer(targets: targets)
        lbBox.value = lb
        let (outcome, run) = try await roll(lb, executor, plan: plan(prepare: "prepare.sh"))
        #expect(outcome == .succeeded)
        let first = try #require(executor.recorded.first)
        #expect(first.phase == .prepare)
        #expect(first.command == "prepare.sh")
        #expect(first.environment == [
            "ROLLGATE_RUN_ID": "\(run.id)", "ROLLGATE_SERVICE": "web", "ROLLGATE_VERSION": "v42",
            "ROLLGATE_TARGET_ID": "i-a", "ROLLGATE_TARGET_PORT": "80", "ROLLGATE_PHASE": "prepare", "ROLLGATE_ATTEMPT": "1",
        ])
        // prepare runs while the target still serves.
        #expect(lb.calls.firstIndex(of: .deregister("i-a"))! > 0)
        #expect(try store.logs.contains { $0.stream == .stdout && $0.text == "deploy on i-b" && $0.targetID == "i-b" && $0.phase == .deploy })
        // Each hook step records its process group as soon as it exists.
        #expect(run.steps.filter { [.prepare, .deploy, .verify].contains($0.phase) }.allSatisfy { $0.hookProcess != nil })
        #expect(run.steps.filter { [.drain, .restore].contains($0.phase) }.allSatisfy { $0.hookProcess == nil })
    }

    @Test func aFailedDeployHookStopsTheRunAndTouchesNoOtherTarget() async throws {
        let lb = FakeLoadBalancer(targets: targets)
        let executor = RecordingExecutor(outcome: { hook in
            hook.phase == .deploy && hook.environment["ROLLGATE_TARGET_ID"] == "i-b" ? .exited(3) : .exited(0)
        })
        let (outcome, run) = try await roll(lb, executor)
        guard case .failed(let failure) = outcome else { Issue.record("expected failure, got \(outcome)"); return }
        let message = failure.message
        #expect(message.contains("i-b"))
        #expect(message.contains("exit 3"))
        #expect(actions(lb) == ["deregister i-a", "register i-a", "deregister i-b"])
        #expect(!lb.calls.contains(.health("i-c")) && !lb.calls.contains(.deregister("i-c")))
        #expect(!lb.isRegistered("i-b"), "a broken build is left out of the load balancer")
        #expect(run.steps.last.map { "\($0.targetID) \($0.phase.rawValue) \($0.status.rawValue)" } == "i-b deploy failed")
        #expect(!executor.recorded.contains { $0.environment["ROLLGATE_TARGET_ID"] == "i-c" })
    }

    @Test func aTargetThatNeverGetsHealthyFailsAtTheTimeoutAndIsTakenOutAgain() async throws {
        let unhealthy = TargetObservation.health(TargetHealth(.unhealthy, reason: "Target.FailedHealthChecks"))
        let lb = FakeLoadBalancer(targets: targets, healthScript: { $0.id == "i-a" ? [unhealthy] : [.health(TargetHealth(.healthy))] })
        let start = clock.now
        let (outcome, run) = try await roll(lb, RecordingExecutor())
        guard case .failed(let failure) = outcome else { Issue.record("expected failure"); return }
        let message = failure.message
        #expect(message.contains("i-a not healthy after 20s"))
        #expect(message.contains("unhealthy (Target.FailedHealthChecks)"))
        #expect(actions(lb) == ["deregister i-a", "register i-a", "deregister i-a"])
        #expect(!lb.isRegistered("i-a"))
        #expect(run.steps.last?.phase == .restore && run.steps.last?.status == .failed)
        // Failed near the timeout (after i-a's drain of two 1 s polls): no 15 s x 40 polling.
        #expect(clock.now.since(start) >= .seconds(22) && clock.now.since(start) < .seconds(24))
    }

    @Test func aDrainThatNeverEndsFailsAtTheDrainTimeout() async throws {
        let draining = TargetObservation.health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress"))
        let lb = FakeLoadBalancer(targets: targets, drainScript: { _ in [draining] })
        let executor = RecordingExecutor()
        let (outcome, _) = try await roll(lb, executor)
        guard case .failed(let failure) = outcome else { Issue.record("expected failure"); return }
        let message = failure.message
        #expect(message.contains("i-a not drained after 30s"))
        #expect(message.contains("draining (Target.DeregistrationInProgress)"))
        #expect(executor.recorded.isEmpty, "no hook runs before the drain ended")
        #expect(actions(lb) == ["deregister i-a"])
    }

    @Test func preflightRefusesToDropBelowNMinusOne() async throws {
        let lb = FakeLoadBalancer(targets: targets, listedHealth: { $0.id == "i-c" ? TargetHealth(.unhealthy, reason: "Target.Timeout") : TargetHealth(.healthy) })
        let (outcome, _) = try await roll(lb, RecordingExecutor())
        guard case .failed(let failure) = outcome else { Issue.record("expected failure"); return }
        let message = failure.message
        #expect(message.contains("preflight for i-a"))
        #expect(message.contains("i-c is unhealthy (Target.Timeout)"))
        #expect(actions(lb).isEmpty, "no target was taken out")
    }

    @Test func loadBalancerErrorsFailTheRunNamingTargetAndPhase() async throws {
        let lb = FakeLoadBalancer(targets: targets, failure: { call in
            call == .register("i-a") ? LoadBalancerError(code: "AccessDenied", message: "not allowed") : nil
        })
        let (outcome, _) = try await roll(lb, RecordingExecutor())
        #expect(outcome == .failed(RunFailure(.loadBalancer, "restore of i-a failed: AccessDenied: not allowed")))
    }

    @Test func anEmptyTargetGroupFails() async throws {
        let (outcome, _) = try await roll(FakeLoadBalancer(targets: []), RecordingExecutor())
        #expect(outcome == .failed(RunFailure(.noTargets, "the target group has no registered targets")))
    }

    @Test func cancelStopsBetweenTargetsWithEveryTouchedTargetBack() async throws {
        let storeRef = store
        let executor = RecordingExecutor(onRun: { hook in
            if hook.phase == .deploy && hook.environment["ROLLGATE_TARGET_ID"] == "i-a" {
                storeRef.requestCancel(RunID(hook.environment["ROLLGATE_RUN_ID"]!)!)
            }
        })
        let lb = FakeLoadBalancer(targets: targets)
        let (outcome, _) = try await roll(lb, executor)
        guard case .cancelled(let message) = outcome else { Issue.record("expected cancel, got \(outcome)"); return }
        #expect(message.contains("i-b, i-c not touched"))
        #expect(actions(lb) == ["deregister i-a", "register i-a"])
        #expect(lb.isRegistered("i-a"))
    }
}

/// A fake group that says where its targets are, or fails to.
struct AddressedLoadBalancer: LoadBalancer, TargetAddressing {
    let inner: FakeLoadBalancer
    let address: @Sendable (Target) throws -> String?
    func host(of target: Target) async throws -> String? { try address(target) }
    func targets() async throws -> [(target: Target, health: TargetHealth)] { try await inner.targets() }
    func health(of target: Target) async throws -> TargetObservation { try await inner.health(of: target) }
    func deregister(_ target: Target) async throws { try await inner.deregister(target) }
    func register(_ target: Target) async throws { try await inner.register(target) }
}

@Suite struct TargetHostTests {
    let clock = ManualClock()
    let store = try! Store.forTests()

    func perform(_ lb: AddressedLoadBalancer, _ executor: RecordingExecutor) async throws -> Roll.Outcome {
        try store.enqueue(service: "web", version: "v1", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let plan = ServicePlan(name: "web", pollInterval: .seconds(1), hooks: HookCommands(prepare: "p.sh", deploy: "d.sh"))
        return await Roll(run: run, plan: plan, loadBalancer: lb, executor: executor, journal: store, clock: clock, logger: .quiet).perform()
    }

    @Test func hooksGetTheTargetsAddress() async throws {
        let executor = RecordingExecutor()
        let lb = AddressedLoadBalancer(inner: FakeLoadBalancer(targets: [Target(id: "i-1", port: 80)]), address: { _ in "10.0.0.5" })
        #expect(try await perform(lb, executor) == .succeeded)
        #expect(executor.recorded.map { $0.environment["ROLLGATE_TARGET_HOST"] } == ["10.0.0.5", "10.0.0.5"])
    }

    @Test func aLookupThatFailsStopsTheRunBeforeTheTargetIsTouched() async throws {
        let fake = FakeLoadBalancer(targets: [Target(id: "i-1", port: 80)])
        let lb = AddressedLoadBalancer(inner: fake, address: { _ in throw LoadBalancerError(code: "UnauthorizedOperation", message: "ec2:DescribeInstances") })
        let outcome = try await perform(lb, RecordingExecutor())
        #expect(outcome == .failed(RunFailure(.targetAddressUnknown, "cannot find the address of i-1 (for ROLLGATE_TARGET_HOST): UnauthorizedOperation: ec2:DescribeInstances; it was not touched")))
        #expect(!fake.calls.contains(.deregister("i-1")))
    }
}

/// A fake group that also says its timing, as the ELBv2 one does.
struct TimedLoadBalancer: LoadBalancer, TargetGroupTimed {
    let inner: FakeLoadBalancer
    let groupTiming: Result<GroupTiming, LoadBalancerError>
    func timing() async throws -> GroupTiming { try groupTiming.get() }
    func targets() async throws -> [(target: Target, health: TargetHealth)] { try await inner.targets() }
    func health(of target: Target) async throws -> TargetObservation { try await inner.health(of: target) }
    func deregister(_ target: Target) async throws { try await inner.deregister(target) }
    func register(_ target: Target) async throws { try await inner.register(target) }
}

@Suite struct WaitSizingTests {
    let clock = ManualClock()
    let store = try! Store.forTests()

    func perform(_ lb: TimedLoadBalancer, sizeDrain: Bool, sizeHealthy: Bool) async throws -> (Roll.Outcome, Duration) {
        try store.enqueue(service: "web", version: "v1", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        var plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(600), healthyTimeout: .seconds(300),
                               hooks: HookCommands(deploy: "deploy.sh"))
        plan.sizeDrainFromGroup = sizeDrain
        plan.sizeHealthyFromGroup = sizeHealthy
        let start = clock.now
        let outcome = await Roll(run: run, plan: plan, loadBalancer: lb, executor: RecordingExecutor(), journal: store,
                                 clock: clock, logger: .quiet).perform()
        try store.finish(run.id, outcome == .succeeded ? .succeed : .fail, error: "done", at: clock.now)
        return (outcome, clock.now.since(start))
    }

    @Test func anUnsetDrainTimeoutIsTheGroupsDelayPlusAMargin() async throws {
        let draining = TargetObservation.health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress"))
        let fake = FakeLoadBalancer(targets: [Target(id: "i-1", port: 80)], drainScript: { _ in [draining] })
        let lb = TimedLoadBalancer(inner: fake, groupTiming: .success(GroupTiming(deregistrationDelay: .seconds(900))))
        let (outcome, took) = try await perform(lb, sizeDrain: true, sizeHealthy: false)
        guard case .failed(let failure) = outcome else { Issue.record("\(outcome)"); return }
        let message = failure.message
        // 900 s + 30 s, not the CLI's fixed 10 minutes (which would give up on a 15-minute delay).
        #expect(message.contains("not drained after 15m30s"))
        #expect(took == .seconds(930))
        #expect(try store.logs.contains { $0.text == "drain_timeout 15m30s: the group's deregistration delay 15m + 30s" })
    }

    @Test func anUnsetHealthyTimeoutFollowsTheHealthCheck() async throws {
        let fake = FakeLoadBalancer(targets: [Target(id: "i-1", port: 80)], healthScript: { _ in [.health(TargetHealth(.initial))] })
        let lb = TimedLoadBalancer(inner: fake, groupTiming: .success(GroupTiming(healthCheckInterval: .seconds(10),
                                                                                  healthCheckTimeout: .seconds(5), healthyThreshold: 3)))
        let (outcome, _) = try await perform(lb, sizeDrain: false, sizeHealthy: true)
        guard case .failed(let failure) = outcome else { Issue.record("\(outcome)"); return }
        let message = failure.message
        #expect(message.contains("not healthy after 1m5s"), "3 x 10 s + 5 s + 30 s: \(message)")
    }

    @Test func setWaitsAreKeptAndAMissingGroupFailsBeforeAnyTargetIsTouched() async throws {
        let fake = FakeLoadBalancer(targets: [Target(id: "i-1", port: 80)])
        let missing = TimedLoadBalancer(inner: fake, groupTiming: .failure(LoadBalancerError(code: "TargetGroupNotFound", message: "One or more target groups not found")))
        let (outcome, _) = try await perform(missing, sizeDrain: true, sizeHealthy: true)
        #expect(outcome == .failed(RunFailure(.loadBalancer, "the target group cannot be read: TargetGroupNotFound: One or more target groups not found")))
        #expect(fake.calls.isEmpty)
        let (kept, _) = try await perform(missing, sizeDrain: false, sizeHealthy: false)
        #expect(kept == .succeeded, "nothing to size: the group's timing is not asked for")
    }
}

extension RollTests {
    @Test func aCancelAcceptedDuringTheLastTargetEndsTheRunCancelledOnceItIsBack() async throws {
        let lb = FakeLoadBalancer(targets: targets)
        let store = self.store
        let executor = RecordingExecutor(onRun: { hook in
            if hook.phase == .deploy && hook.environment["ROLLGATE_TARGET_ID"] == "i-c" { store.requestCancel(1) }
        })
        let (outcome, run) = try await roll(lb, executor)
        guard case .cancelled(let message) = outcome else { Issue.record("\(outcome)"); return }
        #expect(message.contains("every target is back in service"))
        #expect(run.steps.last.map { "\($0.targetID) \($0.phase.rawValue) \($0.status.rawValue)" } == "i-c restore succeeded")
        for target in ["i-a", "i-b", "i-c"] { #expect(lb.isRegistered(target)) }
    }

    @Test func leftOutTargetsAreRolledFirstWithoutTakingCapacity() async throws {
        // i-b was left out by an earlier run: the load balancer lists only i-a and i-c.
        let lb = FakeLoadBalancer(targets: targets)
        try await lb.deregister(Target(id: "i-b", port: 80))
        try store.noteLeftOut(service: "web", target: Target(id: "i-b", port: 80), run: 99, phase: .restore,
                              reason: "not healthy", at: clock.now)
        let (outcome, run) = try await roll(lb, RecordingExecutor())
        #expect(outcome == .succeeded)
        #expect(actions(lb) == ["deregister i-b", "register i-b", "deregister i-a", "register i-a", "deregister i-c", "register i-c"])
        #expect(lb.maxOutOfService == 1, "i-b was already out: rolling it first took nothing more out")
        #expect(try store.logs.contains { $0.text == "all 3 target(s) run v42 and are healthy" })
        #expect(try store.plan(of: run.id).map(\.target.id) == ["i-b", "i-a", "i-c"])
        #expect(try store.plan(of: run.id).allSatisfy { $0.progress == .done })
        #expect(try store.leftOut(service: "web").isEmpty)
    }

    @Test func aFailedHookLeavesTheTargetRecordedAsLeftOutWithTheReason() async throws {
        let lb = FakeLoadBalancer(targets: targets)
        let executor = RecordingExecutor(outcome: { $0.phase == .deploy && $0.environment["ROLLGATE_TARGET_ID"] == "i-b" ? .exited(3) : .exited(0) })
        let (outcome, _) = try await roll(lb, executor)
        #expect(outcome == .failed(RunFailure(.hookFailed, "deploy hook failed on i-b: exit 3; i-b stays deregistered")))
        let left = try #require(try store.leftOut(service: "web").first)
        #expect(left.target.id == "i-b" && left.phase == .deploy)
        #expect(left.reason == "deploying v42: deploy hook failed on i-b: exit 3; i-b stays deregistered")
    }

    @Test func aDatabaseThatFailsPausesTheRollInsteadOfFailingIt() async throws {
        let failing = FailingWrites(5)
        let flaky = GatedJournal(store)
        flaky.beforeStateWrite.withLock { $0 = { _ in try failing.maybeFail() } }
        let lb = FakeLoadBalancer(targets: targets)
        _ = try store.enqueue(service: "web", version: "v42", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let health = StoreHealth()
        let roll = Roll(run: run, plan: plan(), loadBalancer: lb, executor: RecordingExecutor(), journal: flaky,
                        clock: clock, logger: .quiet, context: RollContext(health: health))
        #expect(await roll.perform() == .succeeded)
        #expect(failing.failed == 5)
        #expect(health.failedWrites >= 5)
        #expect(health.failure == nil, "writable again")
        #expect(clock.sleeps.contains(.milliseconds(100)) && clock.sleeps.contains(.milliseconds(200)), "backs off: \(clock.sleeps)")
    }
}

/// The first `count` writes it is asked about fail (a locked or full database).
final class FailingWrites: Sendable {
    private let counts: Mutex<(remaining: Int, failed: Int)>
    var failed: Int { counts.withLock { $0.failed } }
    struct DiskFull: Error {}

    init(_ count: Int) { counts = Mutex((count, 0)) }

    func maybeFail() throws {
        try counts.withLock { counts in
            if counts.remaining > 0 { counts.remaining -= 1; counts.failed += 1; throw DiskFull() }
        }
    }
}

final class Box<T: Sendable>: @unchecked Sendable {
    // @unchecked: set once before the roll starts, read after.
    var value: T?
}

/// What a load balancer can do beyond the four calls every one makes is asked of it (its
/// capabilities default to none, and to itself when it conforms), never found by a cast.
@Suite struct LoadBalancerCapabilityTests {
    @Test func eachCapabilityIsTheLoadBalancerItselfWhenItHasIt() {
        let plain: any LoadBalancer = FakeLoadBalancer(targets: [Target(id: "i-1", port: 80)])
        #expect(plain.timed == nil && plain.addressing == nil && plain.healthCheckTuning == nil)
        let addressed: any LoadBalancer = AddressedLoadBalancer(inner: FakeLoadBalancer(targets: []), address: { _ in "10.0.0.1" })
        #expect(addressed.addressing != nil && addressed.timed == nil && addressed.healthCheckTuning == nil)
        let tunable: any LoadBalancer = TunableGroup(FakeLoadBalancer(targets: []),
                                                     current: HealthCheckSettings(interval: .seconds(30), timeout: .seconds(5), healthyThreshold: 5))
        #expect(tunable.healthCheckTuning?.targetGroup.hasSuffix("targetgroup/web/0123456789abcdef") == true && tunable.addressing == nil)
    }
}
