import Rollout

/// Retention and backups.
extension Store {
    public struct Pruned: Sendable, Equatable {
        public var runs: Int
        public var logLines: Int
    }

    /// Removes finished runs beyond the newest `keepRuns` of each service and log lines of
    /// finished runs older than `keepLogs`. Never removes a service's newest run, a queued or
    /// running run, or the run a left-out target names.
    public func prune(_ retention: Retention, at now: Date) throws -> Pruned {
        try write { db in
            var pruned = Pruned(runs: 0, logLines: 0)
            let finished = RunStatus.allCases.filter(\.isTerminal).map { "'\($0.rawValue)'" }.joined(separator: ", ")
            if let keep = retention.keepRuns {
                let doomed = try db.prepare("""
                    SELECT id FROM (
                        SELECT id, status, ROW_NUMBER() OVER (PARTITION BY service ORDER BY id DESC) AS newness FROM runs
                    ) WHERE newness > ? AND status IN (\(finished))
                      AND id NOT IN (SELECT run_id FROM left_out_targets)
                    """).rows([.integer(Int64(max(1, keep)))]) { $0.int(0) }
                for id in doomed {
                    try db.prepare("DELETE FROM log_lines WHERE run_id = ?").run([.integer(id)])
                    pruned.logLines += db.changes
                    try db.prepare("DELETE FROM steps WHERE run_id = ?").run([.integer(id)])
                    try db.prepare("DELETE FROM run_events WHERE run_id = ?").run([.integer(id)])
                    try db.prepare("DELETE FROM runs WHERE id = ?").run([.integer(id)])
                    pruned.runs += 1
                }
            }
            if let keepLogs = retention.keepLogs {
                try db.prepare("""
                    DELETE FROM log_lines WHERE at < ? AND run_id IN (SELECT id FROM runs WHERE status IN (\(finished)))
                    """).run([.integer(now.adding(.zero - keepLogs).milliseconds)])
                pruned.logLines += db.changes
            }
            return pruned
        }
    }

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
