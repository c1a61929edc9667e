import CoreMetrics
import MetricsTestKit
import Testing
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore

/// What the roll counts as it happens, on the injected clock: the same figures an operator's
/// dashboard shows, measured from the roll's own steps.
@Suite struct RollMetricsTests {
    let targets = [Target(id: "i-a", port: 80), Target(id: "i-b", port: 80)]
    let clock = ManualClock()
    let store = try! Store.forTests()
    let recorded = TestMetrics()

    func roll(_ executor: RecordingExecutor) async throws -> Roll.Outcome {
        _ = try store.enqueue(service: "web", version: "v7", at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(30), healthyTimeout: .seconds(20),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh", verify: "verify.sh"))
        return await Roll(run: run, plan: plan, loadBalancer: FakeLoadBalancer(targets: targets), executor: executor, journal: store,
                          clock: clock, logger: .quiet, context: RollContext(metrics: RollMetrics(factory: recorded))).perform()
    }

    func seconds(_ timer: TestTimer) -> [Double] { timer.values.map { Double($0) / 1e9 } }

    @Test func targetsHooksAndWaitersAreTimedOnTheRollsClock() async throws {
        let clock = self.clock
        // The deploy hook takes 5 s, verify 1 s; drain and health each pass on the second poll,
        // the first one poll interval (1 s) after the change.
        let outcome = try await roll(RecordingExecutor(onRun: { hook in
            clock.advance(by: hook.phase == .deploy ? .seconds(5) : .seconds(1))
        }))
        #expect(outcome == .succeeded)
        let outOfService = try recorded.expectTimer("rollgate_target_out_of_service_seconds", [("service", "web")])
        #expect(seconds(outOfService) == [10, 10], "2 s drain + 5 s deploy + 1 s verify + 2 s health, per target")
        let perTarget = try recorded.expectTimer("rollgate_target_duration_seconds", [("service", "web")])
        #expect(seconds(perTarget) == [10, 10])
        let deploy = try recorded.expectTimer("rollgate_hook_duration_seconds", [("service", "web"), ("phase", "deploy")])
        #expect(seconds(deploy) == [5, 5])
        #expect(try recorded.expectCounter("rollgate_hooks_total", [("service", "web"), ("phase", "verify"), ("result", "exit_0")]).totalValue == 2)
        for rule in ["drained", "inService"] {
            #expect(try recorded.expectCounter("rollgate_waiter_polls_total", [("service", "web"), ("rule", rule), ("result", "met")]).totalValue == 2)
            #expect(try recorded.expectCounter("rollgate_waiter_polls_total", [("service", "web"), ("rule", rule), ("result", "not_yet")]).totalValue == 2)
            let lag = try recorded.expectTimer("rollgate_waiter_observed_lag_seconds", [("service", "web"), ("rule", rule)])
            #expect(seconds(lag) == [1, 1], "seen one poll interval after the poll before at most")
        }
    }

    @Test func aFailedHookIsCountedByItsExitCodeAndItsTargetIsNotCountedAsRolled() async throws {
        let outcome = try await roll(RecordingExecutor(outcome: { hook in
            hook.phase == .deploy && hook.environment["ROLLGATE_TARGET_ID"] == "i-b" ? .exited(3) : .exited(0)
        }))
        guard case .failed = outcome else { Issue.record("expected a failure, got \(outcome)"); return }
        #expect(try recorded.expectCounter("rollgate_hooks_total", [("service", "web"), ("phase", "deploy"), ("result", "exit_3")]).totalValue == 1)
        #expect(try recorded.expectCounter("rollgate_hooks_total", [("service", "web"), ("phase", "deploy"), ("result", "exit_0")]).totalValue == 1)
        #expect(try recorded.expectTimer("rollgate_target_duration_seconds", [("service", "web")]).values.count == 1, "only i-a came back")
    }
}
