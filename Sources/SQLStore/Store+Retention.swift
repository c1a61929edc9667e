import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Retention: pruning in batches, on either engine.
extension Store {
    public struct Pruned: Sendable, Equatable {
        public var runs: Int
        public var logLines: Int
        /// Nothing of this kind is left to prune (another batch would find nothing).
        public var done: Bool

        public init(runs: Int = 0, logLines: Int = 0, done: Bool = true) {
            self.runs = runs
            self.logLines = logLines
            self.done = done
        }

        /// A pass so far and its next batch: their counts, and whether anything is left as the
        /// later one says.
        public static func + (a: Pruned, b: Pruned) -> Pruned {
            Pruned(runs: a.runs + b.runs, logLines: a.logLines + b.logLines, done: b.done)
        }
    }

    /// How much one transaction of the pruner may delete: the writer is released between
    /// batches, so a deploy waits for one batch at most, never for a whole pass.
    public struct PruneBatch: Sendable, Equatable {
        public var runs: Int
        public var logLines: Int
        public init(runs: Int = 200, logLines: Int = 20_000) {
            self.runs = max(1, runs)
            self.logLines = max(1, logLines)
        }
    }

    /// A whole pass, batch after batch (tests and `rollgate`'s own loop, which waits between
    /// batches and runs them on the store's threads).
    public func prune(_ retention: Retention, at now: Date, batch: PruneBatch = PruneBatch()) throws -> Pruned {
        var total = Pruned(runs: 0, logLines: 0, done: false)
        while !total.done { total = total + (try pruneBatch(retention, at: now, batch: batch)) }
        return total
    }

    /// One transaction of pruning: finished runs beyond the newest `keepRuns` of each service
    /// (with their steps, events, deliveries and log lines), then the log lines of finished
    /// runs that ended more than `keepLogs` ago. Never removes a service's newest runs, a
    /// queued or running run, or the run a left-out target names. `done` once nothing is left.
    public func pruneBatch(_ retention: Retention, at now: Date, batch: PruneBatch = PruneBatch()) throws -> Pruned {
        try write { db in
            var budget = batch.logLines
            var pruned = Pruned(runs: 0, logLines: 0, done: true)
            if let keep = retention.keepRuns {
                let doomed = try Store.runsBeyond(db, keep: max(1, keep), limit: batch.runs)
                var finished = 0
                for id in doomed {
                    // A run's lines go in pieces; the run itself once they are all gone.
                    try db.prepare(Store.deleteRunLines).run([.integer(id), .integer(Int64(budget))])
                    pruned.logLines += db.changes
                    budget -= db.changes
                    if budget <= 0, try Store.hasLines(db, run: id) { break }
                    for table in ["steps", "run_events", "runs"] {
                        try db.prepare("DELETE FROM \(table) WHERE \(table == "runs" ? "id" : "run_id") = ?").run([.integer(id)])
                    }
                    pruned.runs += 1
                    finished += 1
                    if budget <= 0 { break }
                }
                // More may wait behind a full batch, or behind a run cut short.
                if doomed.count == batch.runs || finished < doomed.count { pruned.done = false }
            }
            if let keepLogs = retention.keepLogs, budget > 0 {
                let cutoff = now.adding(.zero - keepLogs).milliseconds
                var through = try Store.maintenance(db, "logs_pruned_through") ?? 0
                let candidates = try db.prepare(Store.runsAfterWatermark).rows([.integer(through), .integer(Int64(batch.runs))]) { row in
                    (id: row.int(0), status: RunStatus(rawValue: row.text(1)), finished: row.optionalInt(2))
                }
                var blocked = false, cut = false
                for run in candidates {
                    // The watermark stops at the first run not over long enough: runs end out
                    // of order, and one still running keeps its lines.
                    guard run.status?.isTerminal == true, let finished = run.finished, finished < cutoff else { blocked = true; break }
                    try db.prepare(Store.deleteRunLines).run([.integer(run.id), .integer(Int64(budget))])
                    pruned.logLines += db.changes
                    budget -= db.changes
                    if budget <= 0, try Store.hasLines(db, run: run.id) { cut = true; break }
                    through = run.id
                    if budget <= 0 { cut = true; break }
                }
                try Store.setMaintenance(db, "logs_pruned_through", through)
                if !blocked && (cut || candidates.count == batch.runs) { pruned.done = false }
            }
            if budget <= 0 { pruned.done = false }
            return pruned
        }
    }

    /// Finished runs of every service beyond its newest `keep` (counting every run, finished
    /// or not), oldest first, at most `limit`: service by service from runs_service, each
    /// boundary found by an offset into the index.
    static func runsBeyond(_ db: any SQLSession, keep: Int, limit: Int) throws -> [RunID] {
        var doomed: [RunID] = []
        var service: String? = try db.prepare(firstService).rows([]) { $0.text(0) }.first
        while let current = service, doomed.count < limit {
            if let boundary = try db.prepare(serviceBoundary).rows([.text(current), .integer(Int64(keep - 1))], { $0.int(0) }).first {
                doomed += try db.prepare(finishedBefore).rows([.text(current), .integer(boundary), .integer(Int64(limit - doomed.count))]) { $0.int(0) }
            }
            service = try db.prepare(nextService).rows([.text(current)]) { $0.text(0) }.first
        }
        return doomed
    }

    static func hasLines(_ db: any SQLSession, run: RunID) throws -> Bool {
        try !db.prepare("SELECT 1 FROM log_lines WHERE run_id = ? LIMIT 1").rows([.integer(run)]) { _ in true }.isEmpty
    }

    static func maintenance(_ db: any SQLSession, _ name: String) throws -> Int64? {
        try db.prepare("SELECT value FROM maintenance WHERE name = ?").rows([.text(name)]) { $0.int(0) }.first
    }

    static func setMaintenance(_ db: any SQLSession, _ name: String, _ value: Int64) throws {
        try db.prepare("INSERT INTO maintenance (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .run([.text(name), .integer(value)])
    }

    static let finishedStates = RunStatus.allCases.filter(\.isTerminal).map(\.sql).joined(separator: ", ")
    static let firstService = Query("SELECT service FROM runs ORDER BY service LIMIT 1")
    static let nextService = Query("SELECT service FROM runs WHERE service > ? ORDER BY service LIMIT 1")
    /// The service's `keep`-th newest run: older finished runs go.
    static let serviceBoundary = Query("SELECT id FROM runs WHERE service = ? ORDER BY id DESC LIMIT 1 OFFSET ?")
    static let finishedBefore = Query("""
        SELECT id FROM runs WHERE service = ? AND id < ? AND status IN (\(finishedStates))
          AND id NOT IN (SELECT run_id FROM left_out_targets) ORDER BY id LIMIT ?
        """)
    static let deleteRunLines = Query("DELETE FROM log_lines WHERE seq IN (SELECT seq FROM log_lines WHERE run_id = ? ORDER BY seq LIMIT ?)")
    static let runsAfterWatermark = Query("SELECT id, status, finished_at FROM runs WHERE id > ? ORDER BY id LIMIT ?")
}
