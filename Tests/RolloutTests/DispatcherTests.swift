import Testing
import Rollout
import RolloutTesting

@Suite struct DispatcherTests {
    let clock = ManualClock()
    let store = MemoryRunStore()

    func dispatcher(_ lbs: [String: FakeLoadBalancer], executor: RecordingExecutor = RecordingExecutor()) -> Dispatcher {
        let store = self.store, clock = self.clock
        return Dispatcher(queue: store, clock: clock, logger: .quiet) { run in
            guard let lb = lbs[run.service] else { return .failure(.init("service \(run.service) is not configured")) }
            let plan = ServicePlan(name: run.service, pollInterval: .seconds(1), hooks: HookCommands(deploy: "deploy.sh"))
            return .success(Roll(run: run, plan: plan, loadBalancer: lb, executor: executor, journal: store, clock: clock, logger: .quiet))
        }
    }

    @Test func runsEveryQueuedRunOnePerServiceInOrder() async throws {
        let web = FakeLoadBalancer(targets: [Target(id: "w1", port: 80), Target(id: "w2", port: 80)])
        let api = FakeLoadBalancer(targets: [Target(id: "a1", port: 80)])
        let executor = RecordingExecutor()
        store.enqueue(service: "web", version: "v1", at: clock.now)
        store.enqueue(service: "api", version: "v1", at: clock.now)
        store.enqueue(service: "web", version: "v2", at: clock.now)
        let dispatcher = dispatcher(["web": web, "api": api], executor: executor)
        await dispatcher.start(tick: nil)
        await dispatcher.idle()
        for id in 1...3 { #expect(store.run(RunID(id))?.status == .succeeded, "run \(id)") }
        // web's second run started only after its first finished: versions never interleave.
        let webVersions = executor.recorded.filter { $0.environment["ROLLGATE_SERVICE"] == "web" }.map { $0.environment["ROLLGATE_VERSION"]! }
        #expect(webVersions == ["v1", "v1", "v2", "v2"])
        #expect(web.maxOutOfService == 1)
        await dispatcher.stop()
    }

    @Test func stopInterruptsTheRollInHandAndLeavesQueuedRunsQueued() async throws {
        let (started, signal) = AsyncStream<Void>.makeStream()
        let executor = RecordingExecutor(onRun: { _ in
            signal.yield()
            try? await Task.sleep(for: .seconds(3600))   // a hook still running; cancelled by stop()
        })
        let web = FakeLoadBalancer(targets: [Target(id: "w1", port: 80), Target(id: "w2", port: 80)])
        store.enqueue(service: "web", version: "v1", at: clock.now)
        store.enqueue(service: "web", version: "v2", at: clock.now)
        let dispatcher = dispatcher(["web": web], executor: executor)
        await dispatcher.start(tick: nil)
        var iterator = started.makeAsyncIterator()
        _ = await iterator.next()
        await dispatcher.stop()
        let first = try #require(store.run(1))
        #expect(first.status == .failed)
        #expect(first.error?.hasPrefix("interrupted: rollgate was stopped while rolling w1") == true)
        #expect(first.error?.contains("; the load balancer now says w1 is unused (Target.NotRegistered): it is out of service") == true, "\(first.error ?? "")")
        #expect(first.steps.allSatisfy { $0.status != .running }, "no step is left in hand")
        #expect(first.steps.last?.error == "interrupted")
        #expect(store.run(2)?.status == .queued, "queued runs wait for the next start")
    }

    @Test func aRunForAnUnknownServiceFailsWithTheReason() async throws {
        store.enqueue(service: "gone", version: "v1", at: clock.now)
        let dispatcher = dispatcher([:])
        await dispatcher.start(tick: nil)
        await dispatcher.idle()
        let run = try #require(store.run(1))
        #expect(run.status == .failed)
        #expect(run.error == "service gone is not configured")
        await dispatcher.stop()
    }

    @Test func recoveryEndsAnInterruptedRunNamingTheTargetAndItsState() async throws {
        let lb = FakeLoadBalancer(targets: [Target(id: "w1", port: 80), Target(id: "w2", port: 80)])
        try await lb.deregister(Target(id: "w2", port: 80))
        let unusedFromNowOn = lb   // the drain script answers draining, then unused
        _ = try await unusedFromNowOn.health(of: Target(id: "w2", port: 80))
        var run = Run(id: 1, service: "web", version: "v3", status: .running, createdAt: clock.now, startedAt: clock.now)
        run.steps = [Step(id: 7, runID: 1, targetID: "w2", targetPort: 80, phase: .drain, status: .running, startedAt: clock.now)]
        store.insert(run)
        let executor = RecordingExecutor()
        let resolved = try await Recovery(queue: store, clock: clock, executor: executor, loadBalancer: { $0 == "web" ? lb : nil }).resolveInterrupted()
        #expect(resolved.count == 1)
        let after = try #require(store.run(1))
        #expect(after.status == .failed)
        let error = try #require(after.error)
        #expect(error.hasPrefix("interrupted"))
        #expect(error.contains("during drain of w2"))
        #expect(error.contains("unused (Target.NotRegistered)"))
        #expect(error.contains("out of service"))
        #expect(after.steps.first?.status == .failed)
        #expect(after.steps.first?.error == "interrupted")
        #expect(executor.endedLeftovers.isEmpty, "a drain step runs no hook")
    }

    @Test func recoveryKillsAHookTheDeadProcessLeftRunning() async throws {
        let lb = FakeLoadBalancer(targets: [Target(id: "w1", port: 80)])
        var run = Run(id: 4, service: "web", version: "v3", status: .running, createdAt: clock.now, startedAt: clock.now)
        run.steps = [Step(id: 9, runID: 4, targetID: "w1", targetPort: 80, phase: .deploy, status: .running,
                          startedAt: clock.now, hookProcess: HookProcess(group: 4242))]
        store.insert(run)
        let executor = RecordingExecutor()
        _ = try await Recovery(queue: store, clock: clock, executor: executor, loadBalancer: { _ in lb }).resolveInterrupted()
        #expect(executor.endedLeftovers.map { "\($0.0.group) \($0.1)" } == ["4242 4"])
        let error = try #require(store.run(4)?.error)
        #expect(error.contains("during deploy of w1"))
        #expect(error.contains("its deploy hook was still running (process group 4242) and was killed"))
    }
}
