import Rollout

/// Retention and backups.
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

    /// What giving a pass's space back did.
    public struct SpaceGivenBack: Sendable {
        /// One VACUUM gave it all back.
        public var rewritten = false
        /// Why the VACUUM it tried failed (the steps went on).
        public var rewriteFailure: String?
        /// Steps of incremental vacuum taken.
        public var steps = 0
        /// The file's size after.
        public var fileBytes: Int64 = 0
    }

    /// After a pass, the space it freed goes back to the file system. When most of the file
    /// is free and what is kept is small, by one VACUUM (it rewrites only what is kept: 1.9 s
    /// for 63 MB kept of a 7.7 GB file here, against hours of steps), which also makes an
    /// older database incremental. Otherwise, in a database with incremental auto_vacuum, in
    /// steps of `pagesAtOnce` free pages, each one short hold of the writer (moving kept pages
    /// from the file's end runs at about 1 MB/s here), with `pause` between them to let other
    /// writes in (false: stop). Then the write-ahead log is truncated.
    public func giveSpaceBack(work: BlockingWork?, pagesAtOnce: Int = 100, pause: @Sendable () async -> Bool) async -> SpaceGivenBack {
        var given = SpaceGivenBack()
        if let counts = try? await work.run({ try self.pageCounts() }), Store.shouldRewrite(pages: counts.pages, free: counts.free) {
            do {
                try await work.run { try self.rewrite() }
                given.rewritten = true
            } catch {
                given.rewriteFailure = "\(error)"
            }
        }
        var last = Int64.max
        while let left = try? await work.run({ try self.compactStep(pages: pagesAtOnce) }) {
            given.steps += 1
            guard left > 0, left < last, await pause() else { break }
            last = left
        }
        try? await work.run { try self.checkpoint() }
        given.fileBytes = (try? await work.run({ try self.writer.with { try $0.pragma("page_count") * $0.pragma("page_size") } })) ?? 0
        return given
    }

    /// Up to `pages` free pages given back; the free pages left, or nil in a database without
    /// incremental auto_vacuum (it keeps its size until a VACUUM).
    func compactStep(pages: Int) throws -> Int64? {
        try writer.with { db in
            guard try db.pragma("auto_vacuum") == 2 else { return nil }
            try db.execute("PRAGMA incremental_vacuum(\(max(1, pages)))")
            return try db.pragma("freelist_count")
        }
    }

    /// Pages in the file and pages free in it.
    public func pageCounts() throws -> (pages: Int64, free: Int64) {
        try writer.with { db in (try db.pragma("page_count"), try db.pragma("freelist_count")) }
    }

    /// Whether one VACUUM is the way to give the space back: most of the file free, and what
    /// is kept below `keptLimit` pages (256 MB of 4 KB pages), since it holds the writer while
    /// it runs.
    public static func shouldRewrite(pages: Int64, free: Int64, keptLimit: Int64 = 65_536) -> Bool {
        free * 2 >= pages && pages - free <= keptLimit && free >= 1_024
    }

    /// Rewrites the file (VACUUM) with incremental auto_vacuum from then on.
    public func rewrite() throws {
        try writer.with { db in
            try db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            try db.execute("VACUUM")
        }
    }

    /// Finished runs of every service beyond its newest `keep` (counting every run, finished
    /// or not), oldest first, at most `limit`: service by service from runs_service, each
    /// boundary found by an offset into the index.
    static func runsBeyond(_ db: Connection, keep: Int, limit: Int) throws -> [RunID] {
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

    static func hasLines(_ db: Connection, run: RunID) throws -> Bool {
        try !db.prepare("SELECT 1 FROM log_lines WHERE run_id = ? LIMIT 1").rows([.integer(run)]) { _ in true }.isEmpty
    }

    static func maintenance(_ db: Connection, _ name: String) throws -> Int64? {
        try db.prepare("SELECT value FROM maintenance WHERE name = ?").rows([.text(name)]) { $0.int(0) }.first
    }

    static func setMaintenance(_ db: Connection, _ name: String, _ value: Int64) throws {
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

    /// A consistent copy of the database at `path`, taken while the server runs. The copy
    /// belongs to no process: whoever serves it next takes its running runs over at once.
    public static func backup(database: String, to path: String) throws {
        let source = try Connection(path: database, readOnly: true)
        try source.backup(to: path)
        let copy = try Connection(path: path)
        try copy.transaction {
            try copy.execute("DELETE FROM server_holder")
            try copy.execute("UPDATE runs SET lease_expires_at = 0 WHERE lease_expires_at IS NOT NULL")
        }
    }
}
