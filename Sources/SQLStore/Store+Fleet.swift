import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What rollgate knows of each service's fleet: runs' frozen plans and the targets it took
/// out and has not put back.
extension Store {
    public func plan(of run: RunID) throws -> [PlannedTarget] {
        try read { db in try Store.plan(db, run: run) }
    }

    static func plan(_ db: any SQLSession, run: RunID) throws -> [PlannedTarget] {
        try db.prepare("SELECT target_id, target_port, progress, rollback FROM run_targets WHERE run_id = ? ORDER BY position")
            .rows([.integer(run)]) { row in
                PlannedTarget(target: Target(id: row.text(0), port: Int(row.int(1))),
                              progress: TargetProgress(rawValue: row.text(2)) ?? .pending,
                              rollback: row.optionalText(3).flatMap(RollbackProgress.init(rawValue:)))
            }
    }

    public func freezePlan(run: RunID, targets: [Target]) throws -> [PlannedTarget] {
        try write { db in try Store.freezePlan(db, run: run, targets: targets) }
    }

    static func freezePlan(_ db: any SQLSession, run: RunID, targets: [Target]) throws -> [PlannedTarget] {
        let existing = try Store.plan(db, run: run)
        if !existing.isEmpty { return existing }
        for (position, target) in targets.enumerated() {
            try db.prepare("""
                INSERT INTO run_targets (run_id, position, target_id, target_port, progress) VALUES (?, ?, ?, ?, ?)
                """).run([.integer(run), .integer(Int64(position)), .text(target.id), .integer(Int64(target.port)),
                          .text(TargetProgress.pending.rawValue)])
        }
        return targets.map { PlannedTarget(target: $0, progress: .pending) }
    }

    public func markOut(run: RunID, service: String, target: Target, phase: Phase, reason: String,
                        lease: RunLease, at now: Date) throws {
        try write { db in
            try Store.fence(db, run: run, lease: lease)
            try Store.setProgress(db, run: run, target: target, .out)
            try Store.upsertLeftOut(db, service: service, target: target, run: run, phase: phase, reason: reason,
                                    at: now, keepSince: false)
        }
    }

    public func markDone(run: RunID, service: String, target: Target, lease: RunLease, at now: Date) throws {
        try write { db in
            try Store.fence(db, run: run, lease: lease)
            try Store.setProgress(db, run: run, target: target, .done)
            // Once the run is rolling back, back in service means back on the previous version.
            try db.prepare("UPDATE run_targets SET rollback = ? WHERE run_id = ? AND target_id = ? AND target_port = ? AND rollback = ?")
                .run([.text(RollbackProgress.done.rawValue), .integer(run), .text(target.id), .integer(Int64(target.port)),
                      .text(RollbackProgress.pending.rawValue)])
            try db.prepare("DELETE FROM left_out_targets WHERE service = ? AND target_id = ? AND target_port = ?")
                .run([.text(service), .text(target.id), .integer(Int64(target.port))])
            try db.prepare("UPDATE runs SET interruptions = 0 WHERE id = ?").run([.integer(run)])
            // The version it runs now: the run's, or the previous one while it rolls back; a
            // restore run moves none.
            try db.prepare("""
                INSERT INTO target_versions (service, target_id, target_port, version, run_id, at)
                SELECT ?, ?, ?, COALESCE(rollback_to, version), id, ? FROM runs WHERE id = ? AND kind = \(RunKind.Name.deploy.sql)
                ON CONFLICT (service, target_id, target_port) DO UPDATE SET version = excluded.version, run_id = excluded.run_id, at = excluded.at
                """).run([.text(service), .text(target.id), .integer(Int64(target.port)), .integer(now.milliseconds), .integer(run)])
            try Store.recordEvent(db, run: run, service: service, .targetDone, target: target.id, at: now)
        }
    }

    public func noteLeftOut(service: String, target: Target, run: RunID, phase: Phase, reason: String, at now: Date) throws {
        try write { db in try Store.noteLeftOut(db, service: service, target: target, run: run, phase: phase, reason: reason, at: now) }
    }

    static func noteLeftOut(_ db: any SQLSession, service: String, target: Target, run: RunID, phase: Phase, reason: String, at now: Date) throws {
        try Store.upsertLeftOut(db, service: service, target: target, run: run, phase: phase, reason: reason,
                                at: now, keepSince: true)
        try Store.recordEvent(db, run: run, service: service, .targetLeftOut, target: target.id, detail: reason, at: now)
    }

    public func leftOut(service: String) throws -> [LeftOutTarget] {
        try read { db in try Store.leftOut(db, service: service) }
    }

    /// Every left-out target of every service (for metrics).
    public func leftOutCounts() throws -> [String: Int] {
        try read { db in
            Dictionary(uniqueKeysWithValues: try db.prepare("SELECT service, COUNT(*) FROM left_out_targets GROUP BY service")
                .rows([]) { ($0.text(0), Int($0.int(1))) })
        }
    }

    /// Drops a left-out target, in one transaction with the check that no run of its service
    /// is running (a run that started between an API's check and the delete would otherwise
    /// lose the record of a target it may hold). Throws `ServiceRolling` while one runs.
    public func forget(service: String, targetID: String, by who: String, reason: String?, at now: Date) throws -> LeftOutTarget? {
        try write { db in
            if let running = try db.prepare("SELECT id FROM runs WHERE service = ? AND status = ?")
                .rows([.text(service), .text(RunStatus.running.rawValue)], { $0.int(0) }).first {
                throw ServiceRolling(run: running)
            }
            guard let target = try Store.leftOut(db, service: service).first(where: { $0.target.id == targetID }) else { return nil }
            try db.prepare("DELETE FROM left_out_targets WHERE service = ? AND target_id = ? AND target_port = ?")
                .run([.text(service), .text(target.target.id), .integer(Int64(target.target.port))])
            let detail = "by \(who)" + (reason.map { ": \($0)" } ?? "")
            try Store.recordEvent(db, run: target.runID, service: service, .targetForgotten, target: target.target.id, detail: detail, at: now)
            try Store.insertLog(db, run: target.runID, stream: .system, target: target.target.id, phase: nil,
                                text: "\(target.target.id) forgotten \(detail); rollgate no longer counts it as left out", at: now)
            return target
        }
    }

    static func leftOut(_ db: any SQLSession, service: String) throws -> [LeftOutTarget] {
        try db.prepare("""
            SELECT target_id, target_port, run_id, phase, reason, since FROM left_out_targets
            WHERE service = ? ORDER BY since, target_id
            """).rows([.text(service)]) { row in
                LeftOutTarget(service: service, target: Target(id: row.text(0), port: Int(row.int(1))), runID: row.int(2),
                              phase: Phase(rawValue: row.text(3)) ?? .drain, reason: row.text(4),
                              since: Date(milliseconds: row.int(5)))
            }
    }

    private static func setProgress(_ db: any SQLSession, run: RunID, target: Target, _ progress: TargetProgress) throws {
        try db.prepare("UPDATE run_targets SET progress = ? WHERE run_id = ? AND target_id = ? AND target_port = ?")
            .run([.text(progress.rawValue), .integer(run), .text(target.id), .integer(Int64(target.port))])
    }

    private static func upsertLeftOut(_ db: any SQLSession, service: String, target: Target, run: RunID, phase: Phase,
                                      reason: String, at now: Date, keepSince: Bool) throws {
        try db.prepare("""
            INSERT INTO left_out_targets (service, target_id, target_port, run_id, phase, reason, since)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (service, target_id, target_port) DO UPDATE SET
                run_id = excluded.run_id, phase = excluded.phase, reason = excluded.reason,
                since = CASE WHEN ? = 1 THEN left_out_targets.since ELSE excluded.since END
            """).run([.text(service), .text(target.id), .integer(Int64(target.port)), .integer(run), .text(phase.rawValue),
                      .text(reason), .integer(now.milliseconds), .integer(keepSince ? 1 : 0)])
    }
}

/// Service locks.
extension Store {
    /// Locks a service (replacing a lock it had). `expiresAt` nil: until unlocked.
    public func lock(service: String, reason: String, by: String, expiresAt: Date?, at now: Date) throws -> ServiceLock {
        try write { db in
            try db.prepare("""
                INSERT INTO service_locks (service, reason, locked_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (service) DO UPDATE SET reason = excluded.reason, locked_by = excluded.locked_by,
                    created_at = excluded.created_at, expires_at = excluded.expires_at
                """).run([.text(service), .text(reason), .text(by), .integer(now.milliseconds),
                          expiresAt.map { .integer($0.milliseconds) } ?? .null])
            return ServiceLock(service: service, reason: reason, lockedBy: by, createdAt: Date(milliseconds: now.milliseconds),
                               expiresAt: expiresAt.map { Date(milliseconds: $0.milliseconds) })
        }
    }

    /// Removes a service's lock; returns it, nil if there was none in force.
    public func unlock(service: String, at now: Date) throws -> ServiceLock? {
        try write { db in
            let lock = try Store.lock(db, service: service)
            try db.prepare("DELETE FROM service_locks WHERE service = ?").run([.text(service)])
            return lock.flatMap { $0.holds(at: now) ? $0 : nil }
        }
    }

    /// The lock in force on a service at `now`, nil if none (an expired one has ended).
    public func lock(service: String, at now: Date) throws -> ServiceLock? {
        try read { db in try Store.lock(db, service: service) }.flatMap { $0.holds(at: now) ? $0 : nil }
    }

    static func lock(_ db: any SQLSession, service: String) throws -> ServiceLock? {
        try db.prepare("SELECT reason, locked_by, created_at, expires_at FROM service_locks WHERE service = ?")
            .rows([.text(service)]) { row in
                ServiceLock(service: service, reason: row.text(0), lockedBy: row.text(1), createdAt: Date(milliseconds: row.int(2)),
                            expiresAt: row.optionalInt(3).map(Date.init(milliseconds:)))
            }.first
    }
}

/// The process that serves this database.
public struct ServerHolder: Sendable, Equatable {
    public var owner: LeaseOwner
    public var startedAt: Date
    public var expiresAt: Date
}

extension Store {
    /// Claims the database for `owner` for `duration`; returns the live holder that refuses
    /// it, or nil when claimed (no holder, a lease expired on the store's clock, or a holder
    /// that `isGone`).
    public func claimServer(owner: LeaseOwner, for duration: Duration, isGone: (LeaseOwner) -> Bool) throws -> ServerHolder? {
        try write { db in
            let now = try engine.leaseNow(db), until = now.adding(duration)
            // A holder seen dead may be replaced only while it still holds the row.
            var dead = ""
            if let holder = try Store.serverHolder(db), holder.owner != owner, holder.expiresAt > now, isGone(holder.owner) {
                dead = holder.owner.text
            }
            // One statement decides: on PostgreSQL two replicas claiming a lapsed hold at once
            // both read it lapsed, but the second's upsert waits for the first's row and then
            // finds it live again (its WHERE is evaluated on the row as committed).
            try db.prepare("""
                INSERT INTO server_holder (id, owner, started_at, expires_at) VALUES (1, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, started_at = excluded.started_at, expires_at = excluded.expires_at
                WHERE server_holder.owner = excluded.owner OR server_holder.expires_at <= ? OR server_holder.owner = ?
                """).run([.text(owner.text), .integer(now.milliseconds), .integer(until.milliseconds), .integer(now.milliseconds), .text(dead)])
            if db.changes == 1 { return nil }
            return try Store.serverHolder(db) ?? ServerHolder(owner: owner, startedAt: now, expiresAt: now)
        }
    }

    /// Extends the holder's lease to `duration` from now; false if another process holds the
    /// database now.
    public func renewServer(owner: LeaseOwner, for duration: Duration) throws -> Bool {
        try write { db in
            try db.prepare("UPDATE server_holder SET expires_at = ? WHERE id = 1 AND owner = ?")
                .run([.integer(try engine.leaseNow(db).adding(duration).milliseconds), .text(owner.text)])
            return db.changes == 1
        }
    }

    /// Says `owner` is alive (on the database's clock) with `weight` (the runs it holds, at
    /// least 1) and returns its share of the AWS call budget: its weight over the weights of
    /// every process seen within `window`, itself included. Rows of processes gone for ten
    /// windows are dropped.
    public func replicaAlive(owner: LeaseOwner, weight: Int, window: Duration) throws -> BudgetShare {
        let weight = max(1, weight)
        return try write { db in
            let now = try engine.leaseNow(db)
            try db.prepare("""
                INSERT INTO replicas (owner, weight, seen_at) VALUES (?, ?, ?)
                ON CONFLICT (owner) DO UPDATE SET weight = excluded.weight, seen_at = excluded.seen_at
                """).run([.text(owner.text), .integer(Int64(weight)), .integer(now.milliseconds)])
            try db.prepare("DELETE FROM replicas WHERE seen_at < ?").run([.integer(now.adding(.zero - window * 10).milliseconds)])
            let seen = try db.prepare("SELECT count(*), coalesce(sum(weight), 0) FROM replicas WHERE seen_at >= ?")
                .rows([.integer(now.adding(.zero - window).milliseconds)]) { ($0.int(0), $0.int(1)) }.first ?? (1, Int64(weight))
            return BudgetShare(replicas: max(1, Int(seen.0)), weight: weight, totalWeight: max(Int64(weight), seen.1))
        }
    }

    /// A process stopping: the others take its share of the budget at their next renewal.
    public func replicaGone(owner: LeaseOwner) throws {
        try write { db in try db.prepare("DELETE FROM replicas WHERE owner = ?").run([.text(owner.text)]) }
    }

    public func releaseServer(owner: LeaseOwner) throws {
        try write { db in try db.prepare("DELETE FROM server_holder WHERE id = 1 AND owner = ?").run([.text(owner.text)]) }
    }

    static func serverHolder(_ db: any SQLSession) throws -> ServerHolder? {
        try db.prepare("SELECT owner, started_at, expires_at FROM server_holder WHERE id = 1").rows([]) { row in
            LeaseOwner(row.text(0)).map {
                ServerHolder(owner: $0, startedAt: Date(milliseconds: row.int(1)), expiresAt: Date(milliseconds: row.int(2)))
            }
        }.first ?? nil
    }
}

extension Store {
    /// Each phase's times over the service's last `runs` succeeded deploys (steps that
    /// succeeded): what `rollgate plan` forecasts from.
    public func phaseTimes(service: String, runs: Int = 20) throws -> [Phase: PhaseTimes] {
        try read { db in
            var durations: [Phase: [Duration]] = [:]
            let rows = try db.prepare(Store.phaseTimesQuery).rows([.text(service), .integer(Int64(max(1, runs)))]) { row in
                (Phase(rawValue: row.text(0)), row.int(1))
            }
            for case let (phase?, milliseconds) in rows { durations[phase, default: []].append(.milliseconds(milliseconds)) }
            return durations.compactMapValues { PhaseTimes($0) }
        }
    }

    /// The idle share of each measured drain (fast drain's check) over the service's last
    /// `runs` succeeded deploys: how much of the drain waited on an app that was already quiet.
    public func drainIdleShares(service: String, runs: Int = 20) throws -> [Double] {
        try read { db in
            try db.prepare(Store.drainIdleQuery).rows([.text(service), .integer(Int64(max(1, runs)))]) { row in
                let drain = row.int(0), quiet = row.int(1)
                return drain > 0 ? min(1, Double(quiet) / Double(drain)) : 1
            }
        }
    }

    /// The service's last `?` succeeded deploys (service, then how many): what the plan learns from.
    static let lastSucceededDeploys = """
        SELECT id FROM runs WHERE service = ? AND status = \(RunStatus.succeeded.sql) AND kind = \(RunKind.Name.deploy.sql)
        ORDER BY id DESC LIMIT ?
        """

    static let drainIdleQuery = Query("""
        SELECT finished_at - started_at, quiet_ms FROM steps
        WHERE run_id IN (\(lastSucceededDeploys))
          AND phase = 'drain' AND status = \(StepStatus.succeeded.sql) AND quiet_ms IS NOT NULL
        """)

    static let phaseTimesQuery = Query("""
        SELECT phase, finished_at - started_at FROM steps
        WHERE run_id IN (\(lastSucceededDeploys)) AND status = \(StepStatus.succeeded.sql)
        """)
}

extension Store: HealthCheckLedger {
    public func noteOriginal(service: String, targetGroup: String, run: RunID, settings: HealthCheckSettings, at now: Date) throws -> HealthCheckSettings {
        try write { db in
            try db.prepare("""
                INSERT INTO changed_health_checks (service, target_group, run_id, interval_ms, timeout_ms, healthy_threshold, changed_at)
                VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (service, target_group) DO NOTHING
                """).run([.text(service), .text(targetGroup), .integer(run), .integer(Int64((settings.interval.seconds * 1000).rounded())),
                          .integer(Int64((settings.timeout.seconds * 1000).rounded())), .integer(Int64(settings.healthyThreshold)), .integer(now.milliseconds)])
            // A run taking over an older one's change answers for it from now on.
            try db.prepare("UPDATE changed_health_checks SET run_id = ? WHERE service = ? AND target_group = ?")
                .run([.integer(run), .text(service), .text(targetGroup)])
            return try Store.changedHealthChecks(db, service: service, targetGroup: targetGroup).first?.original ?? settings
        }
    }

    public func originalPutBack(service: String, targetGroup: String) throws {
        try write { db in
            try db.prepare("DELETE FROM changed_health_checks WHERE service = ? AND target_group = ?").run([.text(service), .text(targetGroup)])
        }
    }

    public func changedHealthChecks() throws -> [ChangedHealthCheck] {
        try read { db in try Store.changedHealthChecks(db, service: nil, targetGroup: nil) }
    }

    static func changedHealthChecks(_ db: any SQLSession, service: String?, targetGroup: String?) throws -> [ChangedHealthCheck] {
        // Only the conditions asked for (a parameter never stands alone: PostgreSQL must know its type).
        var conditions: [String] = [], values: [SQLValue] = []
        if let service { conditions.append("service = ?"); values.append(.text(service)) }
        if let targetGroup { conditions.append("target_group = ?"); values.append(.text(targetGroup)) }
        return try db.prepare("""
            SELECT service, target_group, run_id, interval_ms, timeout_ms, healthy_threshold, changed_at FROM changed_health_checks
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")) ORDER BY service, target_group
            """).rows(values) { row in
                ChangedHealthCheck(service: row.text(0), targetGroup: row.text(1), run: row.int(2),
                                   original: HealthCheckSettings(interval: .milliseconds(row.int(3)), timeout: .milliseconds(row.int(4)),
                                                                 healthyThreshold: Int(row.int(5))),
                                   since: Date(milliseconds: row.int(6)))
            }
    }
}

/// One replica's part of the fleet's AWS call budget.
public struct BudgetShare: Sendable, Equatable {
    /// Processes alive on the database, this one included.
    public let replicas: Int
    public let weight: Int
    public let totalWeight: Int64
    /// `weight / totalWeight`, in (0, 1].
    public var fraction: Double { Double(weight) / Double(max(1, totalWeight)) }
}
