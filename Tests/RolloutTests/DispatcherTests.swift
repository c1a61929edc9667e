import Testing
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore
import Foundation

@Suite struct DispatcherTests {
    let clock: ManualClock
    let store: Store

    init() throws {
        clock = ManualClock()
        store = try Store.forTests(leaseClock: clock)
    }

    func dispatcher(_ lbs: [String: FakeLoadBalancer], executor: RecordingExecutor = RecordingExecutor(),
                    owner: LeaseOwner = .test, liveness: StubLiveness = StubLiveness(), lease: LeaseTerms = LeaseTerms()) -> Dispatcher {
        let store = self.store, clock = self.clock
        return Dispatcher(queue: store, clock: clock, logger: .quiet, owner: owner, lease: lease, liveness: liveness,
                          recovery: Recovery(queue: store, clock: clock, executor: executor)) { run in
            guard let lb = lbs[run.service] else { return .failure(RunFailure(.serviceNotConfigured, "service \(run.service) is not configured")) }
            let plan = ServicePlan(name: run.service, pollInterval: .seconds(1), hooks: HookCommands(deploy: "deploy.sh"))
            return .success(Roll(run: run, plan: plan, loadBalancer: lb, executor: executor, journal: store, clock: clock,
                                 logger: .quiet))
        }
    }

    static let dead = LeaseOwner(host: "test", pid: 99, start: 5)
    static let next = LeaseOwner(host: "test", pid: 2, start: 7)

    @Test func runsEveryQueuedRunOnePerServiceInOrder() async throws {
        let web = FakeLoadBalancer(targets: [Target(id: "w1", port: 80), Target(id: "w2", port: 80)])
        let api = FakeLoadBalancer(targets: [Target(id: "a1", port: 80)])
        // web v2 is asked for while web v1 rolls (asked for before it started, it would
        // supersede v1 in the queue).
        let store = self.store, clock = self.clock
        let asked = Box<Bool>()
        let executor = RecordingExecutor(onRun: { hook in
            guard hook.environment["ROLLGATE_SERVICE"] == "web", asked.value == nil else { return }
            asked.value = true
            _ = try? store.enqueue(service: "web", version: "v2", at: clock.now)
        })
        try store.enqueue(service: "web", version: "v1", at: clock.now)
        try store.enqueue(service: "api", version: "v1", at: clock.now)
        // No tick renews the leases here, and both rolls' polls move the one virtual clock: a
        // lease long enough for the whole test (at the default, the holder would stop acting
        // 10 virtual seconds in, as it must when it cannot renew).
        let dispatcher = dispatcher(["web": web, "api": api], executor: executor, lease: LeaseTerms(lease: .seconds(120)))
        await dispatcher.start(tick: nil)
        await dispatcher.idle()
        for id in 1...3 { #expect(try store.run(RunID(id))?.status == .succeeded, "run \(id)") }
        // web's second run started only after its first finished: versions never interleave.
        let webVersions = executor.recorded.filter { $0.environment["ROLLGATE_SERVICE"] == "web" }.map { $0.environment["ROLLGATE_VERSION"]! }
        #expect(webVersions == ["v1", "v1", "v2", "v2"])
        #expect(web.maxOutOfService == 1)
        await dispatcher.stop()
    }

    @Test func stopLeavesTheRunInHandToBeResumedAndTheNextStartFinishesIt() async throws {
        let (started, signal) = AsyncStream<Void>.makeStream()
        let firstHookRuns = Box<Bool>()
        let store = self.store, clock = self.clock
        let executor = RecordingExecutor(onRun: { _ in
            guard firstHookRuns.value == nil else { return }
            firstHookRuns.value = true
            _ = try? store.enqueue(service: "web", version: "v2", at: clock.now)   // queued behind v1, which rolls
            signal.yield()
            try? await Task.sleep(for: .seconds(3600))   // a hook still running; cancelled by stop()
        })
        let web = FakeLoadBalancer(targets: [Target(id: "w1", port: 80), Target(id: "w2", port: 80)])
        try store.enqueue(service: "web", version: "v1", at: clock.now)
        let first = dispatcher(["web": web], executor: executor)
        await first.start(tick: nil)
        var iterator = started.makeAsyncIterator()
        _ = await iterator.next()
        await first.stop()
        let stopped = try #require(try store.run(1))
        #expect(stopped.status == .running, "a stopped roll is resumed, not failed")
        #expect(stopped.steps.allSatisfy { $0.status != .running }, "no step is left in hand")
        #expect(stopped.steps.last?.error?.hasPrefix("interrupted") == true)
        #expect(try store.leftOut(service: "web").map(\.target.id) == ["w1"], "w1 is out and recorded so")
        #expect(try #require(try store.lease(of: 1)).until < clock.now, "the lease is released for the next start")
        #expect(try store.run(2)?.status == .queued, "queued runs wait for the next start")

        // The next start (another process) takes run 1 over at once and finishes it first.
        let second = dispatcher(["web": web], executor: executor, owner: Self.next)
        await second.start(tick: nil)
        await second.idle()
        let resumed = try #require(try store.run(1))
        #expect(resumed.status == .succeeded)
        #expect(try store.run(2)?.status == .succeeded)
        #expect(try store.leftOut(service: "web").isEmpty)
        #expect(web.maxOutOfService == 1)
        #expect(web.isRegistered("w1") && web.isRegistered("w2"))
        let w1Deploys = executor.recorded.filter { $0.environment["ROLLGATE_VERSION"] == "v1" && $0.environment["ROLLGATE_TARGET_ID"] == "w1" }
        #expect(w1Deploys.map { $0.environment["ROLLGATE_ATTEMPT"] } == ["1", "2"], "the interrupted hook runs again from the start")
        #expect(try store.logs.contains { $0.runID == 1 && $0.text.contains("resumed after an interruption during deploy of w1") })
        await second.stop()
    }

    @Test func aRunForAnUnknownServiceFailsWithTheReason() async throws {
        try store.enqueue(service: "gone", version: "v1", at: clock.now)
        let dispatcher = dispatcher([:])
        await dispatcher.start(tick: nil)
        await dispatcher.idle()
        let run = try #require(try store.run(1))
        #expect(run.status == .failed)
        #expect(run.error == "service gone is not configured")
        await dispatcher.stop()
    }

    /// A run as a process that died left it: plan frozen, w1 done, w2 out and draining.
    func crashedRun(owner: LeaseOwner, leaseUntil: Date, lastStep: Step) throws {
        var run = Run(id: 1, service: "web", version: "v3", status: .running, createdAt: clock.now, startedAt: clock.now)
        run.steps = [lastStep]
        try store.insert(run)
        let lease = try store.setLease(of: 1, owner: owner, until: leaseUntil)
        let w1 = Target(id: "w1", port: 80), w2 = Target(id: "w2", port: 80)
        _ = try store.freezePlan(run: 1, targets: [w1, w2])
        try store.markOut(run: 1, service: "web", target: w1, phase: .drain, reason: "test", lease: lease, at: clock.now)
        try store.markDone(run: 1, service: "web", target: w1, lease: lease, at: clock.now)
        try store.markOut(run: 1, service: "web", target: w2, phase: .drain, reason: "test", lease: lease, at: clock.now)
    }

    @Test func aRunWhoseOwnerDiedIsTakenOverAndResumedFromWhatTheLoadBalancerSays() async throws {
        let lb = FakeLoadBalancer(targets: [Target(id: "w1", port: 80), Target(id: "w2", port: 80)])
        try await lb.deregister(Target(id: "w2", port: 80))
        try crashedRun(owner: Self.dead, leaseUntil: clock.now.adding(.seconds(60)),
                       lastStep: Step(id: 7, runID: 1, targetID: "w2", targetPort: 80, phase: .drain, status: .running, startedAt: clock.now))
        let executor = RecordingExecutor()
        let dispatcher = dispatcher(["web": lb], executor: executor, liveness: StubLiveness(gone: [Self.dead]))
        await dispatcher.start(tick: nil)
        await dispatcher.idle()
        let after = try #require(try store.run(1))
        #expect(after.status == .succeeded, "\(after.error ?? "")")
        #expect(after.steps.first?.status == .failed && after.steps.first?.error == "interrupted")
        #expect(lb.calls.filter { $0 == .deregister("w2") }.count == 1, "w2 was already out (the dead process deregistered it): not deregistered again")
        #expect(lb.calls.contains(.deregister("w1")) == false, "w1 was done before the crash: not rolled twice")
        #expect(executor.recorded.map { $0.environment["ROLLGATE_TARGET_ID"]! } == ["w2"])
        #expect(lb.isRegistered("w2"))
        #expect(try store.leftOut(service: "web").isEmpty)
        let texts = try store.logs.map(\.text)
        #expect(texts.contains("interrupted: rollgate stopped during drain of w2 (interruption 1 in a row)"))
        #expect(texts.contains { $0.hasPrefix("resumed after an interruption during drain of w2: the load balancer says draining") })
        await dispatcher.stop()
    }

    @Test func aRunAnOlderRollgateLeftWithoutAPlanBringsBackTheTargetItHadInHand() async throws {
        let lb = FakeLoadBalancer(targets: [Target(id: "w1", port: 80), Target(id: "w2", port: 80)])
        try await lb.deregister(Target(id: "w2", port: 80))   // out, and listed nowhere but in the run's steps
        var run = Run(id: 1, service: "web", version: "v3", status: .running, createdAt: clock.now, startedAt: clock.now)
        run.steps = [Step(id: 7, runID: 1, targetID: "w2", targetPort: 80, phase: .deploy, status: .running, startedAt: clock.now)]
        try store.insert(run)   // no lease, no plan: written before leases and plans existed
        let dispatcher = dispatcher(["web": lb])
        await dispatcher.start(tick: nil)
        await dispatcher.idle()
        #expect(try store.run(1)?.status == .succeeded)
        #expect(try store.plan(of: 1).map(\.target.id) == ["w2", "w1"])
        #expect(lb.isRegistered("w2") && lb.maxOutOfService == 1)
        await dispatcher.stop()
    }

    @Test func aLiveOwnersRunIsLeftAloneUntilItsLeaseExpires() async throws {
        let lb = FakeLoadBalancer(targets: [Target(id: "w1", port: 80), Target(id: "w2", port: 80)])
        try crashedRun(owner: Self.next, leaseUntil: clock.now.adding(.seconds(15)),
                       lastStep: Step(id: 7, runID: 1, targetID: "w2", targetPort: 80, phase: .drain, status: .running, startedAt: clock.now))
        let dispatcher = dispatcher(["web": lb])
        await dispatcher.start(tick: nil)
        await dispatcher.idle()
        #expect(try store.run(1)?.interruptions == 0, "a live holder keeps its run")
        #expect(try store.lease(of: 1)?.owner == Self.next)
        #expect(lb.calls.isEmpty)
        clock.advance(by: .seconds(16))
        await dispatcher.wake()
        await dispatcher.idle()
        #expect(try store.run(1)?.status == .succeeded, "taken over once the lease expired")
        await dispatcher.stop()
    }

    @Test func aRunInterruptedMoreThanThreeTimesInARowFailsListingEachInterruption() async throws {
        let lb = FakeLoadBalancer(targets: [Target(id: "w1", port: 80), Target(id: "w2", port: 80)])
        try crashedRun(owner: Self.dead, leaseUntil: .distantPast,
                       lastStep: Step(id: 7, runID: 1, targetID: "w2", targetPort: 80, phase: .deploy, status: .running,
                                      startedAt: clock.now, hookProcess: HookProcess(group: 4242)))
        for number in 1...3 {
            try store.bumpInterruptions(of: 1)
            try store.recordInterruption(run: 1, note: "crash \(number)", at: clock.now)
        }
        let executor = RecordingExecutor()
        let dispatcher = dispatcher(["web": lb], executor: executor)
        await dispatcher.start(tick: nil)
        await dispatcher.idle()
        let run = try #require(try store.run(1))
        #expect(run.status == .failed)
        let error = try #require(run.error)
        #expect(error.hasPrefix("interrupted 4 times in a row without finishing a target; not resuming again"))
        #expect(error.contains("1. crash 1") && error.contains("3. crash 3") && error.contains("4. interrupted: rollgate stopped during deploy of w2"))
        #expect(executor.recorded.isEmpty, "no hook runs again")
        #expect(executor.endedLeftovers.map { "\($0.0.group) \($0.1)" } == ["4242 1"], "the dead process's hook is still ended")
        #expect(try store.leftOut(service: "web").map(\.target.id) == ["w2"], "w2 stays recorded as left out")
        await dispatcher.stop()
    }

    @Test func aRollThatLostItsLeaseTakesNoFurtherAction() async throws {
        let lb = FakeLoadBalancer(targets: [Target(id: "w1", port: 80), Target(id: "w2", port: 80)])
        try store.enqueue(service: "web", version: "v1", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        // Another process took the run over (our lease had run out while we were stalled).
        try store.setLease(of: run.id, owner: Self.next, until: clock.now.adding(.seconds(15)))
        let roll = Roll(run: run, plan: ServicePlan(name: "web", hooks: HookCommands(deploy: "deploy.sh")), loadBalancer: lb,
                        executor: RecordingExecutor(), journal: store, clock: clock, logger: .quiet)
        #expect(await roll.perform() == .leaseLost)
        #expect(!lb.calls.contains { if case .deregister = $0 { return true } else { return false } }, "fenced before DeregisterTargets")
        #expect(try store.run(run.id)?.status == .running, "the new owner's run is not touched")
    }
}
