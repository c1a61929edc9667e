import Foundation
import Testing
import Rollout
import RolloutTesting
@testable import SQLiteStore
@testable import SQLStore

/// Years of history: every lookup by service goes through an index (asserted on SQLite's own
/// query plans, so a query that would read the whole history fails here, not in production),
/// and retention prunes in short batches with the writer free between them.
@Suite struct HistoryAtScaleTests {
    let db = TempDatabase()
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func plan(_ connection: Connection, _ sql: String) throws -> String {
        try connection.prepare("EXPLAIN QUERY PLAN " + sql).rows { $0.text(3) }.joined(separator: " | ")
    }

    @Test func everyLookupByServiceIsAnIndexSearch() throws {
        let store = try Store(path: db.path, migrator: Migrator(directory: migrationsDirectory))
        _ = store
        let connection = try Connection(path: db.path, readOnly: true)
        let cases: [(String, String, String)] = [
            ("last good version", Store.lastGoodQuery.sql, "USING INDEX runs_service_status (service=? AND status=?)"),
            ("the version before", Store.previousGoodQuery.sql, "USING INDEX runs_service_status (service=? AND status=? AND id<?)"),
            ("runs of a service in a status", Store.runsQuery(RunFilter(service: "web", status: .failed)).0, "runs_service_status (service=? AND status=?)"),
            ("a deep page of them", Store.runsQuery(RunFilter(service: "web", status: .failed, before: 500)).0, "runs_service_status (service=? AND status=? AND id<?)"),
            ("runs of a service", Store.runsQuery(RunFilter(service: "web")).0, "(service=?)"),
            ("runs in a status", Store.runsQuery(RunFilter(status: .running)).0, "(status=?)"),
            ("the history a plan reads", Store.phaseTimesQuery.sql, "runs_service_status (service=? AND status=?)"),
            ("a service's retention boundary", Store.serviceBoundary.sql, "(service=?)"),
            ("the runs before it", Store.finishedBefore.sql, "(service=?"),
            ("the next service", Store.nextService.sql, "(service>?)"),
            ("runs after the log watermark", Store.runsAfterWatermark.sql, "INTEGER PRIMARY KEY (rowid>?)"),
            ("a run's lines to prune", Store.deleteRunLines.sql, "log_lines_run (run_id=?)"),
            ("deliveries of a deleted event", "SELECT 1 FROM deliveries WHERE seq = ?", "deliveries_seq (seq=?)"),
        ]
        for (what, sql, expected) in cases {
            let found = try plan(connection, sql)
            #expect(found.contains(expected), "\(what): \(found)")
            #expect(!found.contains("SCAN runs") && !found.contains("SCAN deliveries") && !found.contains("SCAN log_lines"), "\(what) reads a whole table: \(found)")
            #expect(!found.contains("TEMP B-TREE"), "\(what) sorts: \(found)")
        }
    }

    @Test func aNewDatabaseGivesPrunedPagesBackAndBoundsItsLog() throws {
        let store = try Store(path: db.path, migrator: Migrator(directory: migrationsDirectory))
        _ = store
        let connection = try Connection(path: db.path, readOnly: true)
        #expect(try connection.pragma("auto_vacuum") == 2, "incremental")
        #expect(try connection.prepare("PRAGMA journal_mode").rows { $0.text(0) } == ["wal"])
    }

    /// Runs with lines, finished; what each batch deleted stays within its budget; the end is
    /// what one big pass would leave.
    @Test func retentionPrunesInBatchesWithinTheirBudget() async throws {
        let store = try Store(path: db.path, migrator: Migrator(directory: migrationsDirectory))
        let owner = LeaseOwner(host: "test", pid: 1, start: 1)
        for number in 1...30 {
            let service = number % 3 == 0 ? "api" : "web"
            _ = try store.enqueue(service: service, version: "v\(number)", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0)
            let run = try #require(try store.claimNext(owner: owner, lease: .seconds(60), at: t0))
            try store.log(run: run.id, (0..<12).map { LogEntry(stream: .stdout, target: nil, phase: nil, text: "line \($0)", at: t0) })
            try store.finish(run.id, .succeed, error: nil, at: t0)
        }
        let batch = Store.PruneBatch(runs: 4, logLines: 30)
        var batches: [Store.Pruned] = []
        while batches.last?.done != true {
            batches.append(try store.pruneBatch(Retention(keepRuns: 5), at: t0, batch: batch))
            #expect(batches.count < 100)
        }
        #expect(batches.count > 5, "a pass of 20 runs and 240 lines takes several batches of 30 lines")
        #expect(batches.allSatisfy { $0.logLines <= 30 && $0.runs <= 4 })
        #expect(batches.reduce(0) { $0 + $1.runs } == 20)
        #expect(batches.reduce(0) { $0 + $1.logLines } == 240)
        #expect(try store.runs(RunFilter(service: "web", limit: 100)).count == 5)
        #expect(try store.runs(RunFilter(service: "api", limit: 100)).count == 5)
        #expect(try store.pruneBatch(Retention(keepRuns: 5), at: t0) == Store.Pruned(runs: 0, logLines: 0, done: true))
        // The pages they took go back to the file system.
        let connection = try Connection(path: db.path, readOnly: true)
        let free = { try connection.pragma("freelist_count") }
        #expect(try free() > 0)
        let given = await store.giveSpaceBack(work: nil, pagesAtOnce: 3) { true }
        #expect(try free() == 0)
        #expect(!given.rewritten && given.steps > 0, "a small pass goes back in steps")
    }

    /// Most of the file free and little kept: one VACUUM gives it all back at once, with the
    /// store's readers open, and keeps every row.
    @Test func aMostlyFreeFileIsRewrittenWhileTheStoreIsOpen() throws {
        #expect(Store.shouldRewrite(pages: 100_000, free: 90_000))
        #expect(!Store.shouldRewrite(pages: 100_000, free: 40_000), "mostly kept: step by step")
        #expect(!Store.shouldRewrite(pages: 1_000_000, free: 800_000), "200,000 pages kept: too long a rewrite")
        #expect(!Store.shouldRewrite(pages: 600, free: 500), "too little to bother")
        let store = try Store(path: db.path, migrator: Migrator(directory: migrationsDirectory))
        let owner = LeaseOwner(host: "test", pid: 1, start: 1)
        for number in 1...40 {
            _ = try store.enqueue(service: "web", version: "v\(number)", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0)
            let run = try #require(try store.claimNext(owner: owner, lease: .seconds(60), at: t0))
            try store.log(run: run.id, (0..<200).map { LogEntry(stream: .stdout, target: nil, phase: nil, text: String(repeating: "x", count: 200) + " \($0)", at: t0) })
            try store.finish(run.id, .succeed, error: nil, at: t0)
        }
        _ = try store.prune(Retention(keepRuns: 2), at: t0)
        let before = try store.pageCounts()
        #expect(before.free * 2 >= before.pages, "\(before)")
        _ = try store.runs(RunFilter())   // a reader connection has been used and stays open
        try store.rewrite()
        let after = try store.pageCounts()
        #expect(after.free == 0 && after.pages < before.pages / 2, "\(before) -> \(after)")
        #expect(try store.runs(RunFilter()).map(\.version) == ["v40", "v39"])
        #expect(try store.logs(run: 40, after: 0, limit: 1000).count == 200)
    }

    /// keep_logs reads only the runs after its watermark: a pass that finds nothing new reads
    /// nothing old; a run still running (or ended too recently) holds the watermark back.
    @Test func logRetentionMovesAWatermarkThatStopsAtTheFirstRunNotOverLongEnough() throws {
        let store = try Store(path: db.path, migrator: Migrator(directory: migrationsDirectory))
        let owner = LeaseOwner(host: "test", pid: 1, start: 1)
        var ids: [RunID] = []
        for number in 1...6 {
            _ = try store.enqueue(service: "svc\(number)", version: "v1", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0)
            let run = try #require(try store.claimNext(owner: owner, lease: .seconds(60), at: t0))
            ids.append(run.id)
            try store.log(run: run.id, (0..<5).map { LogEntry(stream: .stdout, target: nil, phase: nil, text: "line \($0)", at: t0) })
            // Run 4 is still running; run 5 ended an hour later than the others.
            if number != 4 { try store.finish(run.id, .succeed, error: nil, at: number == 5 ? t0.adding(.seconds(3600)) : t0) }
        }
        let pruned = try store.prune(Retention(keepLogs: .seconds(1800)), at: t0.adding(.seconds(2400)), batch: Store.PruneBatch(runs: 2, logLines: 7))
        #expect(pruned.logLines == 15, "runs 1-3")
        let watermark = try store.read { try Store.maintenance($0, "logs_pruned_through") }
        #expect(watermark == ids[2], "held at the running run")
        #expect(try store.logs(run: ids[3], after: 0, limit: 10).count == 5)
        #expect(try store.logs(run: ids[5], after: 0, limit: 10).count == 5, "behind the watermark: kept until the running run ends")
        try store.finish(ids[3], .succeed, error: nil, at: t0)
        let later = try store.prune(Retention(keepLogs: .seconds(1800)), at: t0.adding(.seconds(7200)))
        #expect(later.logLines == 15, "runs 4, 5 and 6 once over long enough")
        #expect(try store.read { try Store.maintenance($0, "logs_pruned_through") } == ids[5])
    }

    /// What /healthz reads to say `degraded` when writes back up: the oldest write in hand,
    /// from when it asked for the writer; none once they are done.
    @Test func theOldestWriteInHandIsKnown() throws {
        let store = try Store(path: db.path, migrator: Migrator(directory: migrationsDirectory))
        #expect(store.longestWriteWait == nil)
        let inside = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        Thread {
            _ = try? store.write { _ in inside.signal(); release.wait() }
            done.signal()
        }.start()
        inside.wait()
        Thread { _ = try? store.write { _ in }; done.signal() }.start()   // waits for the writer
        #expect(store.longestWriteWait != nil)
        release.signal()
        done.wait(); done.wait()
        #expect(store.longestWriteWait == nil)
    }
}
