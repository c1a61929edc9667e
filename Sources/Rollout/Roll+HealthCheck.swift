/// `health_check_during_roll`: the group's health check tightened before the first target
/// and put back when the run ends, however it ends. The group's own settings are written
/// down before ModifyTargetGroup, so a crash leaves them on record: the resumed run keeps
/// the roll tightened and puts them back at its end, and a start with the run over puts
/// them back at once (`HealthCheckRestorer`).
extension Roll {
    var tunable: (any HealthCheckTunable)? { loadBalancer.healthCheckTuning }

    func tightenHealthCheck() async throws {
        guard let tightening = plan.healthCheckDuringRoll else { return }
        guard let tunable, let ledger = context.healthChecks else {
            note("health_check_during_roll: this load balancer's health check cannot be changed; the roll goes on with the group's own")
            return
        }
        let current = try await tunable.healthCheck()
        let service = run.service, id = run.id, group = tunable.targetGroup, now = clock.now
        let work = context.blocking
        let original = try await record("write down the group's health check before ModifyTargetGroup") {
            try await work.run { try ledger.noteOriginal(service: service, targetGroup: group, run: id, settings: current, at: now) }
        }
        let tight = tightening.applied(to: original)
        guard current != tight else {
            note("health check already tightened for the roll (\(tight)); the group's own (\(original)) is put back when the run ends")
            return
        }
        try mayAct()
        note("ModifyTargetGroup: health check \(tight) for the roll; the group's own (\(original)) is put back when the run ends")
        do {
            try await tunable.setHealthCheck(tight)
        } catch let refused as LoadBalancerError where !refused.isRetryable && current == original {
            // ELB said no (a permission, a bound): the group still has its own settings, so
            // nothing is left to put back.
            try? await context.blocking.run { try ledger.originalPutBack(service: service, targetGroup: group) }
            throw refused
        }
    }

    /// Puts the group's own health check back if rollgate has it changed (also when the plan
    /// no longer asks for it: a resumed run after a config change). Runs to its end although
    /// the roll's task is cancelled (shutdown); a holder that lost its lease leaves it to the
    /// new one.
    func putHealthCheckBack() async {
        guard let tunable, let ledger = context.healthChecks else { return }
        let service = run.service, group = tunable.targetGroup
        guard let changed = try? await context.blocking.run({ try ledger.changedHealthChecks() })
                .first(where: { $0.service == service && $0.targetGroup == group }) else { return }
        guard LeaseGuard.current?.mayAct != false else { return }
        note("ModifyTargetGroup: putting the group's own health check back (\(changed.original))")
        let restorer = HealthCheckRestorer(ledger: ledger, work: context.blocking)
        let outcome = await Task.detached { await restorer.putBack(changed, on: tunable) }.value
        if let failure = outcome {
            note("could not put the group's health check back: \(failure); rollgate puts it back at its next start, and `rollgate status` shows it changed")
            logger.error("health check not put back", metadata: ["target_group": "\(group)", "error": "\(failure)"])
        }
    }
}

/// Puts a group's own health check back and forgets the note of it.
public struct HealthCheckRestorer: Sendable {
    public let ledger: any HealthCheckLedger
    public let work: BlockingWork?

    public init(ledger: any HealthCheckLedger, work: BlockingWork? = nil) {
        self.ledger = ledger
        self.work = work
    }

    /// Nil when done, else why not (the note stays, for the next try).
    public func putBack(_ changed: ChangedHealthCheck, on group: any HealthCheckTunable) async -> String? {
        do {
            try await group.setHealthCheck(changed.original)
            try await work.run { try ledger.originalPutBack(service: changed.service, targetGroup: changed.targetGroup) }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// What became of one group written down as changed.
    public enum SweepResult: Sendable, Equatable {
        case putBack(ChangedHealthCheck)
        /// Its run still runs: it puts the settings back itself when it ends.
        case leftToItsRun(ChangedHealthCheck)
        case failed(ChangedHealthCheck, String)
        /// No configured service has that group any more: someone must put it back by hand.
        case notConfigured(ChangedHealthCheck)
    }

    /// Puts back every group changed for a run that is no longer running (the process
    /// crashed between the change and the run's end, or the restore failed then).
    public func putBackWhereRunsEnded(isRunning: @Sendable (RunID) async -> Bool,
                                      group: @Sendable (String) -> (any HealthCheckTunable)?) async -> [SweepResult] {
        let ledger = self.ledger
        guard let changed = try? await work.run({ try ledger.changedHealthChecks() }) else { return [] }
        var results: [SweepResult] = []
        for change in changed {
            if await isRunning(change.run) { results.append(.leftToItsRun(change)); continue }
            guard let tunable = group(change.service), tunable.targetGroup == change.targetGroup else {
                results.append(.notConfigured(change)); continue
            }
            if let failure = await putBack(change, on: tunable) {
                results.append(.failed(change, failure))
            } else {
                results.append(.putBack(change))
            }
        }
        return results
    }
}
