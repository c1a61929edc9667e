import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The event log and the outbox built on it: each destination has a cursor through the log
/// and a delivery row per event it is to receive, sent oldest first.
extension Store {
    /// Written inside the transaction that makes the change.
    static func recordEvent(_ db: any SQLSession, run: RunID?, service: String, _ event: RunEventKind, target: String? = nil,
                            phase: Phase? = nil, detail: String? = nil, at now: Date) throws {
        try db.prepare("INSERT INTO run_events (run_id, service, event, target_id, phase, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .run([run.map(SQLValue.integer) ?? .null, .text(service), .text(event.rawValue), target.map(SQLValue.text) ?? .null,
                  phase.map { .text($0.rawValue) } ?? .null, detail.map(SQLValue.text) ?? .null, .integer(now.milliseconds)])
    }

    /// A target's state as the load balancer reported it, when it changed (watchers only:
    /// written without waiting for the disk, like log lines).
    public func recordTargetState(service: String, target: Target, run: RunID?, state: String, at now: Date) throws {
        try writeLog { db in
            try Store.recordEvent(db, run: run, service: service, .targetState, target: target.id, detail: state, at: now)
        }
    }

    public func events(after seq: Int64, limit: Int = 500) throws -> [RunEventRecord] {
        try read { db in
            try db.prepare("SELECT seq, run_id, service, event, target_id, detail, at, phase FROM run_events WHERE seq > ? ORDER BY seq LIMIT ?")
                .rows([.integer(seq), .integer(Int64(limit))], Store.decodeEvent)
        }
    }

    public func event(_ seq: Int64) throws -> RunEventRecord? {
        try read { db in
            try db.prepare("SELECT seq, run_id, service, event, target_id, detail, at, phase FROM run_events WHERE seq = ?")
                .rows([.integer(seq)], Store.decodeEvent).first
        }
    }

    /// The newest event's seq (0 when there is none).
    public func lastEventSeq() throws -> Int64 {
        try read { db in try db.prepare("SELECT COALESCE(MAX(seq), 0) FROM run_events").rows([]) { $0.int(0) }.first ?? 0 }
    }

    public func cursor(of destination: String) throws -> Int64? {
        try read { db in
            try db.prepare("SELECT last_seq FROM delivery_cursors WHERE destination = ?").rows([.text(destination)]) { $0.int(0) }.first
        }
    }

    /// Queues `events` for `destination` and moves its cursor to `upTo`, in one commit.
    public func queueDeliveries(to destination: String, _ events: [RunEventRecord], upTo: Int64, at now: Date) throws {
        try write { db in
            for event in events {
                try db.prepare("""
                    INSERT INTO deliveries (destination, seq, run_id, status, next_attempt_at) VALUES (?, ?, ?, \(DeliveryStatus.pending.sql), ?)
                    ON CONFLICT DO NOTHING
                    """).run([.text(destination), .integer(event.seq), .integer(event.runID), .integer(now.milliseconds)])
            }
            try db.prepare("""
                INSERT INTO delivery_cursors (destination, last_seq) VALUES (?, ?)
                ON CONFLICT (destination) DO UPDATE SET last_seq = CASE WHEN excluded.last_seq > delivery_cursors.last_seq
                                                                        THEN excluded.last_seq ELSE delivery_cursors.last_seq END
                """).run([.text(destination), .integer(upTo)])
        }
    }

    /// The destinations with something pending.
    public func destinationsWithPending() throws -> [String] {
        try read { db in
            try db.prepare("SELECT DISTINCT destination FROM deliveries WHERE status = \(DeliveryStatus.pending.sql) ORDER BY destination").rows([]) { $0.text(0) }
        }
    }

    /// The oldest pending delivery of a destination, if it is due: later ones wait behind it,
    /// so a receiver gets events in order.
    public func nextDelivery(to destination: String, at now: Date) throws -> (event: RunEventRecord, attempts: Int)? {
        try read { db in
            guard let (seq, attempts, due) = try db.prepare("""
                SELECT seq, attempts, next_attempt_at FROM deliveries WHERE destination = ? AND status = \(DeliveryStatus.pending.sql) ORDER BY seq LIMIT 1
                """).rows([.text(destination)], { ($0.int(0), Int($0.int(1)), $0.int(2)) }).first,
                  due <= now.milliseconds else { return nil }
            guard let event = try db.prepare("SELECT seq, run_id, service, event, target_id, detail, at, phase FROM run_events WHERE seq = ?")
                .rows([.integer(seq)], Store.decodeEvent).first else { return nil }
            return (event, attempts)
        }
    }

    public func delivered(to destination: String, seq: Int64, at now: Date) throws {
        try write { db in
            try db.prepare("""
                UPDATE deliveries SET status = \(DeliveryStatus.delivered.sql), attempts = attempts + 1, delivered_at = ?, last_error = NULL
                WHERE destination = ? AND seq = ?
                """).run([.integer(now.milliseconds), .text(destination), .integer(seq)])
        }
    }

    /// A failed attempt: tried again at `retryAt`, or given up (`nil`) so later events go on.
    public func deliveryFailed(to destination: String, seq: Int64, error: String, retryAt: Date?) throws {
        try write { db in
            try db.prepare("""
                UPDATE deliveries SET attempts = attempts + 1, last_error = ?, status = ?, next_attempt_at = COALESCE(?, next_attempt_at)
                WHERE destination = ? AND seq = ?
                """).run([.text(error), .text((retryAt == nil ? DeliveryStatus.failed : .pending).rawValue),
                          retryAt.map { .integer($0.milliseconds) } ?? .null, .text(destination), .integer(seq)])
        }
    }

    public func deliveries(of run: RunID) throws -> [DeliveryRecord] {
        try read { db in
            try db.prepare("""
                SELECT d.destination, d.seq, d.run_id, e.event, d.status, d.attempts, d.last_error, d.delivered_at
                FROM deliveries d JOIN run_events e ON e.seq = d.seq WHERE d.run_id = ? ORDER BY d.seq, d.destination
                """).rows([.integer(run)]) { row in
                    DeliveryRecord(destination: row.text(0), seq: row.int(1), runID: row.int(2),
                                   event: RunEventKind(rawValue: row.text(3)) ?? .queued,
                                   status: DeliveryStatus(rawValue: row.text(4)) ?? .failed, attempts: Int(row.int(5)),
                                   lastError: row.optionalText(6), deliveredAt: row.optionalInt(7).map(Date.init(milliseconds:)))
                }
        }
    }

    static let pendingDeliveryCountsSQL = "SELECT destination, COUNT(*) FROM deliveries WHERE status = \(DeliveryStatus.pending.sql) GROUP BY destination"

    /// Deliveries waiting to be sent, by destination (from the pending index), for /metrics.
    public func pendingDeliveryCounts() throws -> [String: Int] {
        try read { db in
            Dictionary(uniqueKeysWithValues: try db.prepare(Store.pendingDeliveryCountsSQL)
                .rows([]) { ($0.text(0), Int($0.int(1))) })
        }
    }

    /// Where a run wants to hear back besides its service's destinations.
    public func replyTargets(of run: RunID) throws -> (replyURL: String?, githubDeployment: String?) {
        try read { db in
            try db.prepare("SELECT reply_url, github_deployment FROM runs WHERE id = ?").rows([.integer(run)]) {
                ($0.optionalText(0), $0.optionalText(1))
            }.first ?? (nil, nil)
        }
    }

    public func setReplyTargets(of run: RunID, replyURL: String?, githubDeployment: String?) throws {
        try write { db in
            try db.prepare("UPDATE runs SET reply_url = COALESCE(?, reply_url), github_deployment = COALESCE(?, github_deployment) WHERE id = ?")
                .run([replyURL.map(SQLValue.text) ?? .null, githubDeployment.map(SQLValue.text) ?? .null, .integer(run)])
        }
    }

    static func decodeEvent(_ row: any SQLRow) -> RunEventRecord {
        RunEventRecord(seq: row.int(0), runID: row.optionalInt(1) ?? 0, service: row.text(2),
                       event: RunEventKind(rawValue: row.text(3)) ?? .queued, targetID: row.optionalText(4),
                       phase: row.optionalText(7).flatMap(Phase.init(rawValue:)), detail: row.optionalText(5),
                       at: Date(milliseconds: row.int(6)))
    }
}
