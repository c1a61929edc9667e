import Testing
@testable import ELB
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore
import Synchronization

/// A fake group with a name and a timing, for `TargetGroups`.
struct NamedGroup: TargetGroupMember {
    let name: String
    let fake: FakeLoadBalancer
    func targets() async throws -> [(target: Target, health: TargetHealth)] { try await fake.targets() }
    func health(of target: Target) async throws -> TargetObservation { try await fake.health(of: target) }
    func deregister(_ target: Target) async throws { try await fake.deregister(target) }
    func register(_ target: Target) async throws { try await fake.register(target) }
    func timing() async throws -> GroupTiming { GroupTiming(deregistrationDelay: .seconds(300)) }
    func host(of target: Target) async throws -> String? { nil }
}

/// A service behind two target groups (`target_group_arns`): a target out of service is out
/// of both, back only once healthy in both, and the others stay healthy in each.
@Suite struct SeveralTargetGroupsTests {
    let targets = [Target(id: "i-a", port: 80), Target(id: "i-b", port: 80), Target(id: "i-c", port: 80)]
    let clock = ManualClock()
    let store = try! Store.forTests()

    /// The public group drains at once; the internal one takes three polls, and calls a
    /// registered target healthy one poll later than the public one.
    func groups() -> (TargetGroups, FakeLoadBalancer, FakeLoadBalancer) {
        let draining = TargetObservation.health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress"))
        let unused = TargetObservation.health(TargetHealth(.unused, reason: "Target.NotRegistered"))
        let initial = TargetObservation.health(TargetHealth(.initial, reason: "Elb.RegistrationInProgress"))
        let healthy = TargetObservation.health(TargetHealth(.healthy))
        let external = FakeLoadBalancer(targets: targets, drainScript: { _ in [unused] }, healthScript: { _ in [initial, healthy] })
        let inner = FakeLoadBalancer(targets: targets, drainScript: { _ in [draining, draining, draining, unused] },
                                        healthScript: { _ in [initial, initial, healthy] })
        return (TargetGroups([NamedGroup(name: "web-public", fake: external), NamedGroup(name: "web-internal", fake: inner)]),
                external, inner)
    }

    @Test func aTargetIsOutOfEveryGroupWhileItsHooksRunAndBackInEveryGroupAfter() async throws {
        let (both, external, inner) = groups()
        let seen = Mutex<[String]>([])
        let executor = RecordingExecutor(outcome: { hook in
            let id = hook.environment["ROLLGATE_TARGET_ID"] ?? "?"
            // While the deploy runs, neither group may send the target a request.
            if hook.phase == .deploy {
                seen.withLock { $0.append("\(id) public \(external.isRegistered(id)) internal \(inner.isRegistered(id))") }
            }
            return .exited(0)
        })
        try store.enqueue(service: "web", version: "v2", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(30), healthyTimeout: .seconds(30),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh"))
        let outcome = await Roll(run: run, plan: plan, loadBalancer: both, executor: executor, journal: store, clock: clock,
                                 logger: .quiet).perform()
        #expect(outcome == .succeeded)
        #expect(seen.withLock { $0 } == targets.map { "\($0.id) public false internal false" })
        // One out at a time in each group, and every target back in both.
        #expect(external.maxOutOfService == 1 && inner.maxOutOfService == 1)
        for target in targets { #expect(external.isRegistered(target.id) && inner.isRegistered(target.id)) }
        // The drain waited for the slower group, the health wait too.
        let lines = try store.logs(run: run.id, after: 0, limit: 1000).map(\.text)
        #expect(lines.contains { $0.contains("web-public: unused") && $0.contains("web-internal: draining") }, "\(lines)")
    }

    @Test func answersAreCombinedSoThatOutMeansOutOfEveryGroup() {
        let (both, _, _) = groups()
        let healthy = TargetObservation.health(TargetHealth(.healthy))
        let draining = TargetObservation.health(TargetHealth(.draining))
        let unused = TargetObservation.health(TargetHealth(.unused))
        let initial = TargetObservation.health(TargetHealth(.initial))
        let unhealthy = TargetObservation.health(TargetHealth(.unhealthy, reason: "Target.Timeout"))
        // Still served by one group: registered (not out), and not healthy everywhere.
        #expect(both.combined([draining, healthy]).isRegistered)
        #expect(both.combined([.notFound, healthy]).isRegistered)
        #expect(both.combined([unused, healthy]) == .health(TargetHealth(.initial, reason: "web-public: unused, web-internal: healthy")))
        // Out of both: draining while either drains, drained once both are.
        #expect(both.combined([draining, unused]).isOutOfService && !Waiter.Rule.drained.isMet(by: both.combined([draining, unused])))
        #expect(Waiter.Rule.drained.isMet(by: both.combined([unused, .notFound])))
        #expect(Waiter.Rule.drained.isMet(by: both.combined([.notFound, .notFound])))
        // Healthy only when healthy in both; otherwise the worst of them.
        #expect(!Waiter.Rule.inService.isMet(by: both.combined([healthy, initial])))
        #expect(Waiter.Rule.inService.isMet(by: both.combined([healthy, healthy])))
        guard case .health(let worst) = both.combined([unhealthy, initial]) else { Issue.record("no health"); return }
        #expect(worst.state == .unhealthy)
    }
}
