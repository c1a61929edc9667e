@testable import HTTPAPI
@testable import LoadBalancing
@testable import WireFormat
import Testing
@testable import RollgateServer
import Rollout
import RolloutTesting

/// Viewers never become load-balancer calls: one DescribeTargetHealth per service per ttl,
/// whatever the number of viewers, and a roll's own observations in between.
@Suite struct TargetStateCacheTests {
    let clock = ManualClock()
    let targets = [Target(id: "t-1", port: 80), Target(id: "t-2", port: 80)]

    @Test func manyViewersShareOneDescribeTargetHealthPerTTL() async throws {
        let lb = FakeLoadBalancer(targets: targets)
        let cache = TargetStateCache(ttl: .seconds(5), clock: clock)
        await withTaskGroup(of: Int.self) { group in
            for _ in 0..<50 {
                group.addTask { await cache.views(service: "web", loadBalancer: lb, running: nil, leftOut: [])?.count ?? 0 }
            }
            for await count in group { #expect(count == 2) }
        }
        #expect(lb.calls.filter { $0 == .targets }.count == 1, "50 viewers, one call: \(lb.calls)")
        clock.advance(by: .seconds(4))
        _ = await cache.views(service: "web", loadBalancer: lb, running: nil, leftOut: [])
        #expect(lb.calls.filter { $0 == .targets }.count == 1, "still fresh")
        clock.advance(by: .seconds(1))
        _ = await cache.views(service: "web", loadBalancer: lb, running: nil, leftOut: [])
        #expect(lb.calls.filter { $0 == .targets }.count == 2, "refreshed once the ttl passed")
    }

    @Test func aRollsObservationsShowWithoutAskingAgain() async throws {
        let lb = FakeLoadBalancer(targets: targets)
        let cache = TargetStateCache(ttl: .seconds(5), clock: clock)
        _ = await cache.views(service: "web", loadBalancer: lb, running: nil, leftOut: [])
        clock.advance(by: .seconds(1))
        cache.observed(service: "web", target: targets[0], observation: .health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress")), run: 1,
                       at: clock.now)
        let views = await cache.views(service: "web", loadBalancer: lb, running: nil, leftOut: []) ?? []
        #expect(views.first { $0.target == targets[0] }?.health?.state == .draining, "the waiter's last answer")
        #expect(lb.calls.count == 1)
    }

    @Test func leftOutTargetsAreAskedAboutByIDOncePerRefresh() async throws {
        let lb = FakeLoadBalancer(targets: targets)
        try await lb.deregister(targets[1])
        let cache = TargetStateCache(ttl: .seconds(5), clock: clock)
        let left = LeftOutTarget(service: "web", target: targets[1], runID: 3, phase: .deploy, reason: "hook failed", since: clock.now)
        for _ in 0..<10 {
            let views = await cache.views(service: "web", loadBalancer: lb, running: nil, leftOut: [left]) ?? []
            #expect(views.first { $0.target == targets[1] }?.state == "left_out")
        }
        #expect(lb.calls.filter { $0 == .health("t-2") }.count == 1)
    }
}
