import Testing
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore
import Synchronization

@Suite struct SimulatedLoadBalancerTests {
    let clock = ManualClock()
    let store = try! Store.forTests()
    let settings = SimulationSettings(targets: 3, drainTime: .seconds(5), healthyTime: .seconds(3), port: 8080)

    @Test func startsWithEveryTargetRegisteredAndHealthy() async throws {
        let lb = try SimulatedLoadBalancer(service: "web", settings: settings, store: store, clock: clock)
        let listed = try await lb.targets()
        #expect(listed.map(\.target) == [Target(id: "web-1", port: 8080), Target(id: "web-2", port: 8080), Target(id: "web-3", port: 8080)])
        #expect(listed.allSatisfy { $0.health == TargetHealth(.healthy) })
    }

    @Test func drainsForDrainTimeThenIsUnusedAndLeavesTheList() async throws {
        let lb = try SimulatedLoadBalancer(service: "web", settings: settings, store: store, clock: clock)
        let target = Target(id: "web-2", port: 8080)
        try await lb.deregister(target)
        #expect(try await lb.health(of: target) == .health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress")))
        clock.advance(by: .milliseconds(4999))
        #expect(try await lb.health(of: target) == .health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress")))
        #expect(try await lb.targets().count == 3)
        clock.advance(by: .milliseconds(1))
        #expect(try await lb.health(of: target) == .health(TargetHealth(.unused, reason: "Target.NotRegistered")))
        #expect(try await lb.targets().map(\.target.id) == ["web-1", "web-3"])
    }

    @Test func aFailingDatabaseWriteIsRetriedNotAFailedDeregistration() async throws {
        let flaky = FlakyTargetStore(store, failures: 3)
        let health = StoreHealth()
        let lb = try SimulatedLoadBalancer(service: "web", settings: settings, store: flaky, clock: clock, health: health)
        flaky.arm()
        try await lb.deregister(Target(id: "web-1", port: 8080))
        #expect(try await lb.health(of: Target(id: "web-1", port: 8080)) == .health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress")))
        #expect(health.failedWrites == 3 && health.failure == nil)
    }

    @Test func isInitialForHealthyTimeThenHealthy() async throws {
        let lb = try SimulatedLoadBalancer(service: "web", settings: settings, store: store, clock: clock)
        let target = Target(id: "web-1", port: 8080)
        try await lb.deregister(target)
        clock.advance(by: .seconds(10))
        try await lb.register(target)
        #expect(try await lb.health(of: target) == .health(TargetHealth(.initial, reason: "Elb.RegistrationInProgress")))
        clock.advance(by: .seconds(3))
        #expect(try await lb.health(of: target) == .health(TargetHealth(.healthy)))
    }

    @Test func aTargetWithFailingChecksTurnsUnhealthy() async throws {
        var failing = settings
        failing.unhealthyTargets = ["web-3"]
        let lb = try SimulatedLoadBalancer(service: "web", settings: failing, store: store, clock: clock)
        let target = Target(id: "web-3", port: 8080)
        try await lb.deregister(target)
        clock.advance(by: .seconds(6))
        try await lb.register(target)
        clock.advance(by: .seconds(4))
        #expect(try await lb.health(of: target) == .health(TargetHealth(.unhealthy, reason: "Target.FailedHealthChecks")))
    }

    @Test func unknownTargetsAreNotFoundAndCannotBeChanged() async throws {
        let lb = try SimulatedLoadBalancer(service: "web", settings: settings, store: store, clock: clock)
        #expect(try await lb.health(of: Target(id: "web-9", port: 8080)) == .notFound)
        #expect(try await lb.health(of: Target(id: "web-1", port: 9999)) == .notFound)
        await #expect(throws: LoadBalancerError.self) { try await lb.deregister(Target(id: "web-9", port: 8080)) }
    }

    @Test func aRestartSeesWhatTheLoadBalancerWouldStillSay() async throws {
        let first = try SimulatedLoadBalancer(service: "web", settings: settings, store: store, clock: clock)
        try await first.deregister(Target(id: "web-1", port: 8080))
        clock.advance(by: .seconds(2))
        let second = try SimulatedLoadBalancer(service: "web", settings: settings, store: store, clock: clock)
        #expect(try await second.health(of: Target(id: "web-1", port: 8080)) == .health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress")))
        clock.advance(by: .seconds(3))
        #expect(try await second.health(of: Target(id: "web-1", port: 8080)) == .health(TargetHealth(.unused, reason: "Target.NotRegistered")))
    }

    @Test func aFullRollAgainstTheSimulationTakesTheModelledTime() async throws {
        let lb = try SimulatedLoadBalancer(service: "web", settings: settings, store: store, clock: clock)
        try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let plan = ServicePlan(name: "web", pollInterval: .milliseconds(500), drainTimeout: .seconds(60), healthyTimeout: .seconds(60),
                               hooks: HookCommands(deploy: "deploy.sh"))
        let start = clock.now
        let outcome = await Roll(run: run, plan: plan, loadBalancer: lb, executor: RecordingExecutor(), journal: store,
                                 clock: clock, logger: .quiet).perform()
        #expect(outcome == .succeeded)
        // Each target: 5 s drain + 3 s health check, noticed within one 500 ms poll.
        #expect(clock.now.since(start) == .seconds(24))
        #expect(try await lb.targets().allSatisfy { $0.health.state == .healthy })
    }
}

/// Saves fail `failures` times once armed (a locked or full database).
final class FlakyTargetStore: SimulatedTargetStore {
    let base: Store
    private let state: Mutex<(armed: Bool, remaining: Int)>

    init(_ base: Store, failures: Int) { self.base = base; state = Mutex((false, failures)) }

    func arm() { state.withLock { $0.armed = true } }

    func simulatedTargets(service: String) throws -> [SimulatedTarget] { try base.simulatedTargets(service: service) }

    func saveSimulatedTarget(service: String, _ target: SimulatedTarget) throws {
        struct Full: Error {}
        try state.withLock { state in
            if state.armed && state.remaining > 0 { state.remaining -= 1; throw Full() }
        }
        try base.saveSimulatedTarget(service: service, target)
    }
}
