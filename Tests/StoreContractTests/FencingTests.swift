import Testing
import Logging
import Rollout
import RolloutTesting
@testable import SQLiteStore
@testable import SQLStore
import Foundation

/// A process that lost a run can write nothing into it: every run-scoped write of a roll goes
/// through `FencedJournal`, which checks the lease in the write's own transaction.
@Suite struct FencingTests {
    let db = TempDatabase()
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
    let alice = LeaseOwner(host: "h1", pid: 10, start: 100)
    let bob = LeaseOwner(host: "h2", pid: 20, start: 200)
    let web1 = Target(id: "web-1", port: 80)

    /// alice claimed the run, stopped past her lease, and bob took it over.
    func takenFromAlice() throws -> (Store, Run, RunLease) {
        let store = try Store(path: db.path, migrator: Migrator(directory: migrationsDirectory), leaseClock: clock)
        _ = try store.enqueue(service: "web", version: "v2", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0)
        let run = try #require(try store.claimNext(owner: alice, lease: .seconds(15), at: t0))
        let alices = try #require(run.lease)
        #expect(alices == RunLease(owner: alice, epoch: 1))
        _ = try store.fenced(by: alices).freezePlan(run: run.id, targets: [web1])
        let step = try store.fenced(by: alices).beginStep(run: run.id, target: web1, phase: .prepare, at: t0)
        try store.fenced(by: alices).endStep(step, .succeed, error: nil, at: t0)
        clock.advance(to: t0.adding(.seconds(20)))
        let taken = try store.takeOver(owner: bob, lease: .seconds(40), excluding: [], isGone: { _ in false })
        #expect(taken.map(\.id) == [run.id], "alice's lease expired: bob takes the run")
        #expect(taken.first?.lease == RunLease(owner: bob, epoch: 2), "the takeover is a new epoch")
        return (store, try #require(try store.run(run.id)), alices)
    }

    @Test(arguments: Engine.allCases) func everyRunScopedWriteOfTheOldHolderIsRefused(_ engine: Engine) throws {
        let (store, run, alices) = try takenFromAlice()
        let stale = store.fenced(by: alices)
        let stepsBefore = run.steps.count
        #expect(throws: LeaseLost.self) { _ = try stale.beginStep(run: run.id, target: web1, phase: .drain, at: t0) }
        #expect(throws: LeaseLost.self) { try stale.endStep(run.steps[0].id, .fail, error: "interrupted: rollgate was shutting down", at: t0) }
        #expect(throws: LeaseLost.self) { try stale.recordHookProcess(HookProcess(group: 4242), step: run.steps[0].id) }
        #expect(throws: LeaseLost.self) { try stale.log(run: run.id, stream: .system, target: nil, phase: nil, text: "stopped at a safe point", at: t0) }
        #expect(throws: LeaseLost.self) { try stale.noteLeftOut(service: "web", target: web1, run: run.id, phase: .drain, reason: "x", at: t0) }
        #expect(throws: LeaseLost.self) { try stale.recordRollback(run: run.id, to: "v1", cause: RunFailure(.hookFailed, "x"), at: t0) }
        #expect(throws: LeaseLost.self) { try stale.recordBake(run: run.id, elapsed: .seconds(5)) }
        #expect(throws: LeaseLost.self) { try stale.renewLease(run: run.id, lease: alices, for: .seconds(99)) }
        #expect(throws: LeaseLost.self) { try stale.markDone(run: run.id, service: "web", target: web1, lease: alices, at: t0) }
        #expect(throws: LeaseLost.self) { try store.finish(run.id, .succeed, error: nil, code: nil, lease: alices, at: t0) }
        #expect(throws: LeaseLost.self) { _ = try stale.freezePlan(run: run.id, targets: [web1]) }
        #expect(throws: LeaseLost.self) { try stale.markOut(run: run.id, service: "web", target: web1, phase: .drain, reason: "x", lease: alices, at: t0) }
        // Nothing of alice's reached the run.
        let after = try #require(try store.run(run.id))
        #expect(after.steps.count == stepsBefore && after.steps[0].status == .succeeded)
        #expect(after.rollbackTo == nil)
        #expect(try store.logs(run: run.id, after: 0, limit: 100).isEmpty)
        #expect(try store.leftOut(service: "web").isEmpty)
        // bob, who holds it, writes as before.
        let fresh = store.fenced(by: try #require(run.lease))
        let step = try fresh.beginStep(run: run.id, target: web1, phase: .drain, at: t0)
        try fresh.log(run: run.id, stream: .system, target: nil, phase: nil, text: "bob rolls", at: t0)
        try fresh.endStep(step, .succeed, error: nil, at: t0)
        #expect(try store.logs(run: run.id, after: 0, limit: 100).map(\.text) == ["bob rolls"])
    }

    @Test(arguments: Engine.allCases) func theOldHoldersLogDropsItsLinesInsteadOfRetryingThem(_ engine: Engine) throws {
        let (store, run, alices) = try takenFromAlice()
        let log = RunLog(run: run.id, journal: store.fenced(by: alices), mask: SecretMask(), health: StoreHealth(), flushDelay: nil)
        log.append(.stdout, target: "web-1", phase: .deploy, text: "a hook still printing", at: t0)
        #expect(log.flush(at: t0), "nothing is left to write: the lines are not this process's to write")
        #expect(log.lostTheRun)
        log.append(.stdout, target: "web-1", phase: .deploy, text: "more", at: t0)
        #expect(log.waiting == 0)
        #expect(try store.logs(run: run.id, after: 0, limit: 100).isEmpty)
    }

    @Test(arguments: Engine.allCases) func aRollOfTheOldHolderStopsBeforeTouchingAnything(_ engine: Engine) async throws {
        let (store, run, alices) = try takenFromAlice()
        var stale = run
        stale.lease = alices
        let lb = FakeLoadBalancer(targets: [web1])
        let executor = RecordingExecutor()
        let plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(30), healthyTimeout: .seconds(30),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh"))
        let outcome = await Roll(run: stale, plan: plan, loadBalancer: lb, executor: executor, journal: store.fenced(by: alices),
                                 clock: ManualClock(start: t0), logger: BatchOnStoreTests.quiet).perform()
        #expect(outcome == .leaseLost)
        #expect(!lb.calls.contains(.deregister("web-1")) && !lb.calls.contains(.register("web-1")), "\(lb.calls)")
        #expect(executor.recorded.isEmpty, "no hook started")
        #expect(try store.logs(run: run.id, after: 0, limit: 100).isEmpty)
    }
}
