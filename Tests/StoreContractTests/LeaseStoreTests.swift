import Testing
import Dispatch
import Foundation
import Rollout
import RolloutTesting
@testable import SQLiteStore
@testable import SQLStore

/// Leases, fencing, the fleet's records, locks and retention in SQLite, on explicit times.
@Suite struct LeaseStoreTests {
    let db = TempDatabase()
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    /// The store's own clock: lease expiries are computed and compared on it.
    let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
    let alice = LeaseOwner(host: "h1", pid: 10, start: 100)
    let bob = LeaseOwner(host: "h2", pid: 20, start: 200)
    let web1 = Target(id: "web-1", port: 80)

    func store(_ engine: Engine = .sqlite, replica: String = "") throws -> Store { try makeStore(engine, db, leaseClock: clock, replica: replica) }

    func queued(_ store: Store, _ version: String = "v1", service: String = "web") throws -> Run {
        guard case .created(let run, _) = try store.enqueue(service: service, version: version, reason: nil, requestedBy: "t",
                                                            idempotencyKey: nil, at: t0) else { throw TestFailure() }
        return run
    }

    struct TestFailure: Error {}

    @Test(arguments: Engine.allCases) func aClaimIsLeasedRenewedByItsOwnerOnlyAndTakenOverOnceExpired(_ engine: Engine) throws {
        let store = try store(engine)
        let run = try queued(store)
        let alices = try #require(try store.claimNext(owner: alice, lease: .seconds(15), at: t0)?.lease)
        try store.renewLease(run: run.id, lease: alices, for: .seconds(30))
        #expect(throws: LeaseLost.self) { try store.renewLease(run: run.id, lease: RunLease(owner: bob, epoch: alices.epoch), for: .seconds(30)) }
        #expect(throws: LeaseLost.self, "an older epoch of the same owner") {
            try store.renewLease(run: run.id, lease: RunLease(owner: alice, epoch: alices.epoch - 1), for: .seconds(30))
        }
        // Not expired, owner alive: bob takes nothing.
        clock.advance(to: t0.adding(.seconds(29)))
        #expect(try store.takeOver(owner: bob, lease: .seconds(16), excluding: [], isGone: { _ in false }).isEmpty)
        // Expired: bob takes it, counting the interruption; alice is fenced from then on.
        clock.advance(to: t0.adding(.seconds(31)))
        let taken = try store.takeOver(owner: bob, lease: .seconds(14), excluding: [], isGone: { _ in false })
        let expiry = try store.read { try $0.prepare("SELECT lease_expires_at FROM runs WHERE id = ?").rows([.integer(run.id)]) { $0.int(0) }.first }
        #expect(expiry == t0.adding(.seconds(45)).milliseconds, "the store computed the expiry on its own clock")
        #expect(taken.map(\.id) == [run.id])
        #expect(taken.first?.interruptions == 1)
        let bobs = try #require(taken.first?.lease)
        #expect(bobs.epoch == alices.epoch + 1)
        #expect(throws: LeaseLost.self) { try store.renewLease(run: run.id, lease: alices, for: .seconds(60)) }
        #expect(throws: LeaseLost.self) {
            try store.markOut(run: run.id, service: "web", target: web1, phase: .drain, reason: "x", lease: alices, at: t0)
        }
        #expect(throws: LeaseLost.self) { try store.finish(run.id, .succeed, error: nil, code: nil, lease: alices, at: t0) }
        try store.markOut(run: run.id, service: "web", target: web1, phase: .drain, reason: "x", lease: bobs, at: t0)
        try store.finish(run.id, .succeed, error: nil, code: nil, lease: bobs, at: t0)
        #expect(try store.run(run.id)?.status == .succeeded)
    }

    /// A claim's time taken before the service's previous run ended (that end committed
    /// meanwhile, by another replica) is no earlier than that end: the history never shows two
    /// runs of one service overlapping.
    @Test(arguments: Engine.allCases) func aRunStartsNoEarlierThanItsServicesPreviousRunEnded(_ engine: Engine) throws {
        let store = try store(engine)
        _ = try queued(store, "v1")
        let first = try #require(try store.claimNext(owner: alice, lease: .seconds(15), at: t0))
        try store.finish(first.id, .succeed, error: nil, code: nil, lease: try #require(first.lease), at: t0.adding(.seconds(10)))
        _ = try queued(store, "v2")
        let second = try #require(try store.claimNext(owner: bob, lease: .seconds(15), at: t0.adding(.seconds(5))))
        #expect(second.startedAt == t0.adding(.seconds(10)))
        #expect(try store.run(second.id)?.startedAt == t0.adding(.seconds(10)))
        _ = try queued(store, "v1", service: "api")
        #expect(try store.claimNext(owner: bob, lease: .seconds(15), at: t0.adding(.seconds(5)))?.startedAt == t0.adding(.seconds(5)),
                "another service's runs do not hold it back")
    }

    /// `rolled_by`: the replica that claimed the run, then the one that took it over; kept
    /// after the run ends (the lease's owner is not). Without a name, the owner's host.
    @Test(arguments: Engine.allCases) func aRunSaysWhichReplicaRolledIt(_ engine: Engine) throws {
        let a = try store(engine, replica: "rollgate-a")
        let b = try store(engine, replica: "rollgate-b")
        let run = try queued(a)
        #expect(try a.run(run.id)?.rolledBy == nil, "queued: nobody yet")
        #expect(try a.claimNext(owner: alice, lease: .seconds(15), at: t0)?.rolledBy == "rollgate-a")
        #expect(try b.run(run.id)?.rolledBy == "rollgate-a")
        clock.advance(to: t0.adding(.seconds(16)))
        let taken = try b.takeOver(owner: bob, lease: .seconds(15), excluding: [], isGone: { _ in false })
        #expect(taken.map(\.rolledBy) == ["rollgate-b"])
        try b.finish(run.id, .succeed, error: nil, code: nil, lease: try #require(taken.first?.lease), at: t0)
        #expect(try a.run(run.id)?.rolledBy == "rollgate-b", "kept once the run is over")
        let unnamed = try store(engine)
        _ = try queued(unnamed, "v2")
        #expect(try unnamed.claimNext(owner: alice, lease: .seconds(15), at: t0)?.rolledBy == "h1", "the owner's host name")
    }

    @Test(arguments: Engine.allCases) func aDeadOwnersRunIsTakenOverAtOnceAndTwoTakersNeverBothWin(_ engine: Engine) throws {
        let store = try store(engine)
        let run = try queued(store)
        _ = try store.claimNext(owner: alice, lease: .seconds(15), at: t0)
        let first = try store.takeOver(owner: bob, lease: .seconds(15), excluding: [], isGone: { $0 == alice })
        #expect(first.map(\.id) == [run.id])
        // A third process looking at the same moment finds bob's fresh, live lease.
        let carol = LeaseOwner(host: "h3", pid: 30, start: 300)
        #expect(try store.takeOver(owner: carol, lease: .seconds(15), excluding: [], isGone: { $0 == alice }).isEmpty)
        // A process never takes over the runs it has in hand.
        #expect(try store.takeOver(owner: bob, lease: .seconds(15), excluding: [run.id], isGone: { _ in true }).isEmpty)
    }

    /// Two takers really at once: two stores on one file (each its own connections, as two
    /// processes have), each on its own thread, released together by a barrier; thirty times,
    /// one wins and one finds nothing.
    @Test(arguments: Engine.allCases) func twoTakersAtTheSameMomentNeverBothWin(_ engine: Engine) throws {
        let first = try store(engine), second = try store(engine)
        let carol = LeaseOwner(host: "h3", pid: 30, start: 300)
        for round in 0..<30 {
            let run = try queued(first, "v\(round)", service: "svc\(round)")
            _ = try first.claimNext(owner: alice, lease: .seconds(15), at: t0)
            let start = DispatchSemaphore(value: 0)
            let group = DispatchGroup()
            let results = TakeResults()
            let t0 = self.t0, alice = self.alice
            for (store, owner) in [(first, bob), (second, carol)] {
                group.enter()
                DispatchQueue(label: "taker").async {
                    start.wait()
                    let taken = (try? store.takeOver(owner: owner, lease: .seconds(15), excluding: [],
                                                     isGone: { $0 == alice })) ?? []
                    results.add(taken.filter { $0.id == run.id }.count)
                    group.leave()
                }
            }
            start.signal(); start.signal()
            group.wait()
            #expect(results.total == 1, "round \(round): \(results.total) takers won run \(run.id)")
        }
    }

    final class TakeResults: @unchecked Sendable {
        // @unchecked: `counts` is only touched under `lock`.
        private let lock = NSLock()
        private var counts: [Int] = []
        func add(_ count: Int) { lock.lock(); counts.append(count); lock.unlock() }
        var total: Int { lock.lock(); defer { lock.unlock() }; return counts.reduce(0, +) }
    }

    @Test(arguments: Engine.allCases) func aReleasedLeaseIsTakenOverByTheNextStartAtOnce(_ engine: Engine) throws {
        let store = try store(engine)
        let run = try queued(store)
        let alices = try #require(try store.claimNext(owner: alice, lease: .seconds(15), at: t0)?.lease)
        try store.releaseLease(run: run.id, lease: alices)
        #expect(try store.takeOver(owner: bob, lease: .seconds(15), excluding: [], isGone: { _ in false }).map(\.id) == [run.id])
    }

    @Test(arguments: Engine.allCases) func thePlanIsFrozenOnceAndTheFleetRecordFollowsTheTargets(_ engine: Engine) throws {
        let store = try store(engine)
        let run = try queued(store)
        let alices = try #require(try store.claimNext(owner: alice, lease: .seconds(15), at: t0)?.lease)
        let web2 = Target(id: "web-2", port: 80)
        #expect(try store.freezePlan(run: run.id, targets: [web1, web2]).map(\.progress) == [.pending, .pending])
        #expect(try store.freezePlan(run: run.id, targets: [web2]).map(\.target) == [web1, web2], "never re-decided")
        try store.markOut(run: run.id, service: "web", target: web1, phase: .drain, reason: "taken out", lease: alices, at: t0)
        #expect(try store.plan(of: run.id).map(\.progress) == [.out, .pending])
        #expect(try store.leftOut(service: "web").map(\.target) == [web1])
        try store.noteLeftOut(service: "web", target: web1, run: run.id, phase: .deploy, reason: "hook failed", at: t0.adding(.seconds(9)))
        let left = try #require(try store.leftOut(service: "web").first)
        #expect(left.reason == "hook failed" && left.phase == .deploy && left.since == t0, "since: when it was taken out")
        #expect(try store.leftOutCounts() == ["web": 1])
        try store.markDone(run: run.id, service: "web", target: web1, lease: alices, at: t0)
        #expect(try store.plan(of: run.id).map(\.progress) == [.done, .pending])
        #expect(try store.leftOut(service: "web").isEmpty)
    }

    @Test(arguments: Engine.allCases) func locksHoldUntilTheyExpireOrAreRemovedAndQueueRestoresStillRun(_ engine: Engine) throws {
        let store = try store(engine)
        _ = try store.lock(service: "web", reason: "freeze", by: "api:ops", expiresAt: t0.adding(.seconds(60)), at: t0)
        #expect(try store.lock(service: "web", at: t0.adding(.seconds(59)))?.reason == "freeze")
        #expect(try store.lock(service: "web", at: t0.adding(.seconds(60))) == nil)
        let deploy = try queued(store)
        guard case .created(let restore, _) = try store.enqueue(service: "web", version: "v0", reason: nil, requestedBy: "t", idempotencyKey: nil,
                                                                kind: .restore(web1), at: t0) else { throw TestFailure() }
        #expect(try store.claimNext(owner: alice, lease: .zero, at: t0)?.id == restore.id, "putting capacity back is not a deploy")
        try store.finish(restore.id, .succeed, error: nil, at: t0)
        #expect(try store.claimNext(owner: alice, lease: .zero, at: t0) == nil, "the deploy waits for the lock")
        #expect(try store.unlock(service: "web", at: t0)?.reason == "freeze")
        #expect(try store.claimNext(owner: alice, lease: .zero, at: t0)?.id == deploy.id)
        #expect(try store.run(restore.id)?.kind == .restore(web1))
    }

    @Test(arguments: Engine.allCases) func pruningKeepsTheNewestRunsUnfinishedRunsAndWhatALeftOutTargetNames(_ engine: Engine) throws {
        let store = try store(engine)
        var ids: [RunID] = []
        for version in 1...5 {
            let run = try queued(store, "v\(version)")
            ids.append(run.id)
            _ = try store.claimNext(owner: alice, lease: .zero, at: t0)
            try store.log(run: run.id, stream: .system, target: nil, phase: nil, text: "line", at: t0)
            if version == 2 {
                try store.noteLeftOut(service: "web", target: web1, run: run.id, phase: .restore, reason: "x", at: t0)
            }
            try store.finish(run.id, .succeed, error: nil, at: t0)
        }
        let running = try queued(store, "v6")
        _ = try store.claimNext(owner: alice, lease: .zero, at: t0)
        let pruned = try store.prune(Retention(keepRuns: 2), at: t0)
        // The newest two (the running one counts) stay, and run 2, which a left-out target names.
        #expect(pruned == Store.Pruned(runs: 3, logLines: 3))
        #expect(try store.runs(RunFilter()).map(\.id) == [running.id, ids[4], ids[1]])
        // Logs older than keep_logs go; the running run keeps its lines.
        try store.log(run: running.id, stream: .system, target: nil, phase: nil, text: "still rolling", at: t0)
        let later = try store.prune(Retention(keepLogs: .seconds(3600)), at: t0.adding(.seconds(7200)))
        #expect(later.logLines == 2, "the lines of runs 5 and 2")
        #expect(try store.logs(run: running.id, after: 0, limit: 10).count == 1)
    }

    @Test func aBackupIsAConsistentDatabaseThatServes() throws {
        let store = try store()
        let run = try queued(store)
        try store.log(run: run.id, stream: .system, target: nil, phase: nil, text: "before the backup", at: t0)
        let copy = db.directory + "/backup.db"
        try Store.backup(database: db.path, to: copy)
        let restored = try Store(path: copy, migrator: Migrator(directory: migrationsDirectory))
        #expect(try restored.run(run.id)?.version == "v1")
        #expect(try restored.logs(run: run.id, after: 0, limit: 10).map(\.text) == ["before the backup"])
    }

    /// The replicas alive on a database split the AWS call budget among themselves, by the
    /// runs each holds (at least one's worth each).
    @Test(arguments: Engine.allCases) func replicasAliveShareTheBudgetByWeightWithinALeaseAndAStoppedOneLeaves(_ engine: Engine) throws {
        let store = try store(engine)
        let window = Duration.seconds(15)
        #expect(try store.replicaAlive(owner: alice, weight: 0, window: window) == BudgetShare(replicas: 1, weight: 1, totalWeight: 1), "alone: all of it")
        #expect(try store.replicaAlive(owner: bob, weight: 1, window: window).fraction == 0.5)
        let busy = try store.replicaAlive(owner: alice, weight: 3, window: window)
        #expect(busy.replicas == 2 && busy.fraction == 0.75, "a renewal is the same row, with its new weight: \(busy)")
        #expect(try store.replicaAlive(owner: bob, weight: 1, window: window).fraction == 0.25)
        clock.advance(to: t0.adding(.seconds(16)))
        #expect(try store.replicaAlive(owner: alice, weight: 3, window: window).fraction == 1, "bob unseen for a lease is not counted")
        #expect(try store.replicaAlive(owner: bob, weight: 1, window: window).fraction == 0.25, "and counts again when seen")
        try store.replicaGone(owner: bob)
        #expect(try store.replicaAlive(owner: alice, weight: 3, window: window).fraction == 1, "a stopped replica leaves at once")
    }

    @Test func theServerHolderRefusesASecondLiveProcess() throws {
        let store = try store()
        #expect(try store.claimServer(owner: alice, for: .seconds(15), isGone: { _ in false }) == nil)
        clock.advance(to: t0.adding(.seconds(1)))
        let refused = try store.claimServer(owner: bob, for: .seconds(15), isGone: { _ in false })
        #expect(refused?.owner == alice)
        #expect(try store.renewServer(owner: alice, for: .seconds(29)))
        #expect(try !store.renewServer(owner: bob, for: .seconds(29)))
        clock.advance(to: t0.adding(.seconds(29)))
        #expect(try store.claimServer(owner: bob, for: .seconds(31), isGone: { _ in false })?.owner == alice, "renewed until t0 + 30 s")
        clock.advance(to: t0.adding(.seconds(31)))
        #expect(try store.claimServer(owner: bob, for: .seconds(29), isGone: { _ in false }) == nil,
                "an expired hold is taken")
        clock.advance(to: t0.adding(.seconds(32)))
        #expect(try store.claimServer(owner: alice, for: .seconds(28), isGone: { $0 == bob }) == nil,
                "a dead holder's hold is taken")
        try store.releaseServer(owner: alice)
        clock.advance(to: t0.adding(.seconds(33)))
        #expect(try store.claimServer(owner: bob, for: .seconds(27), isGone: { _ in false }) == nil)
    }
}

/// A scrape of /metrics reads only what is active: its queries go through indexes that hold
/// queued/running runs and pending deliveries, never a scan of the history.
@Suite struct ScrapeQueryTests {
    let db = TempDatabase()

    func plan(_ store: Store, _ sql: String) throws -> String {
        try store.read { db in try db.prepare("EXPLAIN QUERY PLAN " + sql).rows([]) { $0.text(3) } }.joined(separator: "; ")
    }

    @Test func scrapeQueriesUseIndexesNotTheHistory() throws {
        let store = try Store(path: db.path, migrator: Migrator(directory: migrationsDirectory))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    /// The store's own clock: lease expiries are computed and compared on it.
    let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        // Some history, and statistics for the planner to see it.
        for index in 0..<200 {
            guard case .created(let run, _) = try store.enqueue(service: "web", version: "v\(index)", reason: nil, requestedBy: "t",
                                                                idempotencyKey: nil, at: t0) else { continue }
            try store.finish(run.id, .cancel, error: nil, at: t0)
        }
        try store.write { try $0.execute("ANALYZE") }
        let runs = try plan(store, Store.activeRunCountsSQL(.sqlite))
        #expect(runs.contains("USING") && runs.contains("INDEX runs_status"), "\(runs)")
        #expect(runs.contains("SEARCH runs"), "a search of the index, not a scan: \(runs)")
        let deliveries = try plan(store, Store.pendingDeliveryCountsSQL)
        #expect(deliveries.contains("deliveries_pending"), "\(deliveries)")
    }
}
