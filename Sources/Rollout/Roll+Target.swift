#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The roll of one target, phase by phase, and the roll's records.
extension Roll {
    func roll(_ target: Target, from point: ResumePoint, number: Int, of targets: [Target], batch: Set<Target>) async throws {
        note("target \(number)/\(targets.count): \(target)", target: target)
        let began = clock.now
        // Out of service since this drain, or since the drain an interrupted attempt began.
        var outSince = point <= .drain ? nil : run.steps.last { $0.targetID == target.id && $0.targetPort == target.port && $0.phase == .drain }?.startedAt
        // Before any drain, a first one or a resumed one (a target whose prepare succeeded
        // before a restart is still serving): a target already out takes no capacity.
        // What the preflight saw of the target, still true at the drain unless a hook ran between.
        var seen: TargetObservation?
        if point <= .drain {
            seen = try await preflight(target, among: targets, batch: batch)
        }
        let host = point < .restore ? try await address(of: target) : nil
        if point <= .start, let command = plan.hooks.prepare {
            try await hook(.prepare, command, on: target, host: host)
            seen = nil
        }
        if point <= .drain {
            outSince = clock.now
            try await drain(target, host: host, seen: seen)
        }
        if point <= .deploy {
            try await hook(.deploy, plan.hooks.deploy, on: target, host: host)
        }
        if point <= .verify, let command = plan.hooks.verify {
            try await hook(.verify, command, on: target, host: host)
        }
        try await restore(target)
        context.metrics.targetRolled(service: run.service, duration: clock.now.since(began),
                                     outOfService: outSince.map { clock.now.since($0) })
    }

    /// Never take capacity below N - max_unavailable: a target still serving is taken out only
    /// while every target of the plan outside its batch is healthy. A target already out takes
    /// no capacity.
    /// Returns what the group said of the target itself. The first look may be the listing the
    /// run's plan was just made from (one DescribeTargetHealth fewer per run).
    private func preflight(_ target: Target, among targets: [Target], batch: Set<Target>) async throws -> TargetObservation {
        let others = Set(targets).subtracting(batch)
        let start = clock.now
        while true {
            let kept = planListing.take(freshWithin: min(plan.pollInterval, .seconds(1)), now: clock.uptime)
            let health = if let kept { kept } else { try await loadBalancer.targets() }
            for (listed, state) in health { observe(listed, .health(state)) }
            let own = health.first { $0.target == target }?.health
            guard let own, own.state != .unused, own.state != .draining, own.state != .unhealthyDraining else {
                note("preflight: \(target.id) is already out of the load balancer (\(own?.description ?? "not registered")); no capacity is taken", target: target)
                return own.map { .health($0) } ?? .notFound
            }
            let healthyOthers = Set(health.filter { $0.health.state == .healthy }.map(\.target))
            let missing = others.subtracting(healthyOthers).sorted()
            if missing.isEmpty { return .health(own) }
            let states = missing.map { other in
                "\(other.id) is \(health.first { $0.target == other }?.health.description ?? "not registered")"
            }.joined(separator: ", ")
            if clock.now.since(start) >= plan.healthyTimeout {
                throw Stop(.preflightUnhealthy, "preflight for \(target.id): \(states) after \(plan.healthyTimeout.humanText); not taking \(target.id) out (capacity would fall below N-\(batch.count))")
            }
            note("preflight: waiting, \(states)", target: target)
            try await clock.sleep(for: plan.pollInterval)
        }
    }

    /// Records the target as out (write ahead), deregisters it if it is still registered,
    /// and waits until drained (or, with fast drain, until the app has been quiet long enough).
    /// `seen`: the target's state as the preflight just read it (no need to ask again).
    private func drain(_ target: Target, host: String?, seen: TargetObservation?) async throws {
        try Task.checkCancellation()   // a safe point: nothing is started once shutdown began
        try await record("record \(target.id) as out before DeregisterTargets") {
            try await journal.markOut(run: run.id, service: run.service, target: target, phase: .drain,
                                reason: "run \(run.id) took it out to deploy \(run.version)", lease: lease, at: clock.now)
        }
        let step = try await record("begin the drain step") { try await journal.beginStep(run: run.id, target: target, phase: .drain, at: clock.now) }
        do {
            let now: TargetObservation
            if let seen { now = seen } else { now = try await loadBalancer.health(of: target) }
            observe(target, now)
            if now.isRegistered {
                try mayAct()
                note("DeregisterTargets \(target)", target: target, phase: .drain)
                try await loadBalancer.deregister(target)
            } else {
                note("\(target.id) is already out of the load balancer (\(now)); waiting until drained", target: target, phase: .drain)
            }
            if let fast = plan.fastDrain {
                try await fastDrain(target, fast, host: host, step: step)
            } else {
                // Just deregistered, it is draining: the first poll waits one interval.
                let outcome = try await wait(target, until: .drained, timeout: plan.drainTimeout, phase: .drain,
                                             firstPoll: now.isRegistered ? plan.pollInterval : .zero)
                if case .timedOut(let last) = outcome {
                    throw Stop(.drainTimeout, "\(target.id) not drained after \(plan.drainTimeout.humanText): last state \(last?.description ?? "unknown"); it stays deregistered")
                }
            }
            try await record("end the drain step") { try await journal.endStep(step, .succeed, error: nil, at: clock.now) }
        } catch {
            throw await failed(step, target: target, phase: .drain, error)
        }
    }

    /// Registers the target (idempotent) and waits until healthy; then it is done and no
    /// longer left out, in one commit.
    private func restore(_ target: Target) async throws {
        try Task.checkCancellation()
        let step = try await record("begin the restore step") { try await journal.beginStep(run: run.id, target: target, phase: .restore, at: clock.now) }
        do {
            try await record("renew the run's lease before RegisterTargets") {
                try await journal.renewLease(run: run.id, lease: lease, for: context.lease.duration)
            }
            try mayAct()
            note("RegisterTargets \(target)", target: target, phase: .restore)
            try await registerAgainIfStillDraining(target)
            // Just registered, it is `initial` until a health check passes: the first poll waits one interval.
            let outcome = try await wait(target, until: .inService, timeout: plan.healthyTimeout, phase: .restore,
                                         firstPoll: plan.pollInterval)
            if case .timedOut(let last) = outcome {
                // An ALB sends traffic to unhealthy targets when all are unhealthy: take it out again.
                try mayAct()
                note("\(target.id) not healthy in time; DeregisterTargets so it cannot serve", target: target, phase: .restore)
                try? await loadBalancer.deregister(target)
                throw Stop(.healthTimeout, "\(target.id) not healthy after \(plan.healthyTimeout.humanText): last state \(last?.description ?? "unknown"); deregistered again")
            }
            try await record("end the restore step") { try await journal.endStep(step, .succeed, error: nil, at: clock.now) }
            try await record("record \(target.id) as back in service") {
                try await journal.markDone(run: run.id, service: run.service, target: target, lease: lease, at: clock.now)
            }
        } catch {
            throw await failed(step, target: target, phase: .restore, error)
        }
    }

    /// Where the target is, asked once before it is touched; a lookup that fails stops the
    /// run while the target still serves.
    private func address(of target: Target) async throws -> String? {
        guard let addressing = loadBalancer.addressing else { return nil }
        do {
            let host = try await addressing.host(of: target)
            if let host { note("\(target.id) is at \(host)", target: target) }
            return host
        } catch {
            throw Stop(.targetAddressUnknown, "cannot find the address of \(target.id) (for ROLLGATE_TARGET_HOST): \(error); it was not touched")
        }
    }

    private func hook(_ phase: Phase, _ command: String, on target: Target, host: String?) async throws {
        try Task.checkCancellation()
        let journal = self.journal, clock = self.clock, logger = self.logger, log = self.log
        let attempt = run.steps.filter { $0.targetID == target.id && $0.phase == phase }.count + 1
        let step = try await record("begin the \(phase.rawValue) step") {
            try await journal.beginStep(run: run.id, target: target, phase: phase, at: clock.now)
        }
        let invocation = HookInvocation(phase: phase, command: command,
                                        environment: environment(target, phase: phase, host: host, attempt: attempt),
                                        timeout: plan.hookTimeout)
        try mayAct()
        note("\(phase.rawValue) hook\(attempt > 1 ? " (attempt \(attempt))" : ""): \(command)", target: target, phase: phase)
        let hookStarted = clock.now
        let outcome = await executor.run(invocation, started: { process in
            do {
                try journal.recordHookProcess(process, step: step)
            } catch {
                logger.error("cannot record the hook's process group", metadata: ["error": "\(error)"])
            }
        }) { stream, lines in
            log.append(stream, target: target.id, phase: phase, lines: lines, at: clock.now)
        }
        context.metrics.hookEnded(service: run.service, phase: phase, outcome: outcome, duration: clock.now.since(hookStarted))
        // A hook stopped because this holder may no longer act: nothing more is recorded here.
        try mayAct()
        if outcome.succeeded {
            try await record("end the \(phase.rawValue) step") { try await journal.endStep(step, .succeed, error: nil, at: clock.now) }
            try Task.checkCancellation()
            return
        }
        if Task.isCancelled {
            try await record("end the \(phase.rawValue) step") {
                try await journal.endStep(step, .fail, error: "interrupted: rollgate was shutting down (\(outcome))", at: clock.now)
            }
            throw CancellationError()
        }
        let message = "\(phase.rawValue) hook failed on \(target.id): \(outcome)"
        if phase == .prepare {
            try await record("end the prepare step") { try await journal.endStep(step, .fail, error: message, at: clock.now) }
            throw Stop(.hookFailed, message)
        }
        throw await failed(step, target: target, phase: phase, Stop(.hookFailed, message + "; \(target.id) stays deregistered"))
    }

    /// What every hook of a target gets (the values never go into the command string).
    func environment(_ target: Target, phase: Phase, host: String?, attempt: Int) -> [String: String] {
        var environment = [
            "ROLLGATE_RUN_ID": "\(run.id)",
            "ROLLGATE_SERVICE": run.service,
            "ROLLGATE_VERSION": run.version,
            "ROLLGATE_TARGET_ID": target.id,
            "ROLLGATE_TARGET_PORT": "\(target.port)",
            "ROLLGATE_PHASE": phase.rawValue,
            "ROLLGATE_ATTEMPT": "\(attempt)",
        ]
        if let host { environment["ROLLGATE_TARGET_HOST"] = host }
        if rollingBack { environment["ROLLGATE_ROLLBACK"] = "1" }
        return environment
    }

    /// A check (fast drain's, the canary's): a hook command run every poll, bounded by ten
    /// polls (at least 10 s, at most `hook_timeout`), its output in the run's log.
    func check(_ command: String, phase: Phase, environment: [String: String], loggedAs target: String?) async throws -> HookOutcome {
        try mayAct()
        let log = self.log, clock = self.clock
        let invocation = HookInvocation(phase: phase, command: command, environment: environment,
                                        timeout: min(plan.hookTimeout, max(plan.pollInterval * 10, .seconds(10))))
        return await executor.run(invocation) { stream, lines in
            log.append(stream, target: target, phase: phase, lines: lines, at: clock.now)
        }
    }

    /// Fast drain: drained when the load balancer says so, or once `check` has passed every
    /// poll without a break for `quiet` while it says `draining` (the app on the target has
    /// had no request in flight for that long). Each poll's answer and each change of the
    /// check's verdict go into the run's log. However the drain ends, how long the target had
    /// been quiet by then is recorded on the step (the idle share `rollgate plan` reports);
    /// with `measure_only` that is all the check does.
    private func fastDrain(_ target: Target, _ fast: FastDrain, host: String?, step: StepID) async throws {
        let start = clock.now
        var quietSince: Date?
        var checks = 0
        let noteQuiet = { (end: Date) async throws in
            guard checks > 0 else { return }
            let quiet = quietSince.map { end.since($0) } ?? .zero
            try await record("note how long \(target.id) was quiet in its drain") { try await journal.noteQuiet(step, quiet: quiet) }
            if fast.measureOnly {
                let share = Int((quiet.seconds / max(0.001, end.since(start).seconds) * 100).rounded())
                note("fast drain (measure only): \(target.id) was quiet for the last \(quiet.humanText) of its \(end.since(start).humanText) drain (\(share)%)",
                     target: target, phase: .drain)
            }
        }
        while true {
            try Task.checkCancellation()
            do {
                let observation = try await loadBalancer.health(of: target)
                observe(target, observation)
                note("\(target.id): \(observation)", target: target, phase: .drain)
                if Waiter.Rule.drained.isMet(by: observation) {
                    try await noteQuiet(clock.now)
                    return
                }
                if case .health(let health) = observation, health.state == .draining {
                    checks += 1
                    var environment = self.environment(target, phase: .drain, host: host, attempt: checks)
                    environment["ROLLGATE_CHECK"] = "fast_drain"
                    let outcome = try await check(fast.check, phase: .drain, environment: environment, loggedAs: target.id)
                    if outcome.succeeded {
                        if quietSince == nil {
                            quietSince = clock.now
                            note(fast.measureOnly
                                 ? "fast drain (measure only): \(target.id) is quiet (\(fast.check) passed); still waiting for the load balancer"
                                 : "fast drain: \(target.id) is quiet (\(fast.check) passed); counted as drained once it stays quiet for \(fast.quiet.humanText)",
                                 target: target, phase: .drain)
                        }
                    } else if quietSince != nil || checks == 1 {
                        quietSince = nil
                        note("fast drain: \(target.id) is not quiet yet (\(fast.check): \(outcome)); waiting", target: target, phase: .drain)
                    }
                    if !fast.measureOnly, let since = quietSince, clock.now.since(since) >= fast.quiet {
                        try await noteQuiet(clock.now)
                        note("fast drain: \(target.id) stayed quiet for \(clock.now.since(since).humanText) while the load balancer says draining; counted as drained",
                             target: target, phase: .drain)
                        return
                    }
                } else {
                    quietSince = nil
                }
            } catch let error as LoadBalancerError where error.isRetryable {
                note("\(target.id): poll failed, will retry: \(error)", target: target, phase: .drain)
            }
            let elapsed = clock.now.since(start)
            if elapsed >= plan.drainTimeout {
                throw Stop(.drainTimeout, "\(target.id) neither drained nor quiet for \(fast.quiet.humanText) after \(plan.drainTimeout.humanText); it stays deregistered")
            }
            try await clock.sleep(for: min(plan.pollInterval, plan.drainTimeout - elapsed))
        }
    }

    /// RegisterTargets; after a fast drain, if the load balancer refuses it or keeps the target
    /// `draining` (an IP target can only be registered again once the deregistration delay is
    /// over), waits until it is `unused` and registers it again. Which one happened goes into
    /// the log.
    private func registerAgainIfStillDraining(_ target: Target) async throws {
        // Without fast drain (or measuring only) the target was `unused` before its deploy: it
        // cannot be draining.
        try mayAct()
        guard let fast = plan.fastDrain, !fast.measureOnly else {
            try await loadBalancer.register(target)
            return
        }
        var refusal: LoadBalancerError?
        do {
            try await loadBalancer.register(target)
        } catch let error as LoadBalancerError where !error.isRetryable {
            refusal = error
        }
        let now = try await loadBalancer.health(of: target)
        note("\(target.id): \(now)", target: target, phase: .restore)
        observe(target, now)
        guard refusal != nil || now.isDraining else { return }
        note(refusal.map { "the load balancer refused RegisterTargets for \(target.id) (\($0)); waiting until it is unused to register it again" }
             ?? "the load balancer keeps \(target.id) draining after RegisterTargets; waiting until it is unused to register it again",
             target: target, phase: .restore)
        let outcome = try await wait(target, until: .drained, timeout: plan.drainTimeout, phase: .restore,
                                     firstPoll: plan.pollInterval)
        if case .timedOut(let last) = outcome {
            throw Stop(.drainTimeout, "\(target.id) still not unused after \(plan.drainTimeout.humanText) (last state \(last?.description ?? "unknown")); it could not be registered again")
        }
        try mayAct()
        note("RegisterTargets \(target) again", target: target, phase: .restore)
        try await loadBalancer.register(target)
    }

    /// Ends a failed step and, for a target out of service, says why it stays left out.
    /// Cancellation (shutdown) and a lost lease pass through untouched: the run is resumed.
    private func failed(_ step: StepID, target: Target, phase: Phase, _ error: Error) async -> Error {
        if error is CancellationError || error is LeaseLost {
            if error is CancellationError {
                try? await journal.endStep(step, .fail, error: "interrupted: rollgate was shutting down", at: clock.now)
            }
            return error
        }
        let stop = (error as? Stop) ?? Stop(error is LoadBalancerError ? .loadBalancer : .unexpected, "\(phase.rawValue) of \(target.id) failed: \(error)")
        // Shutdown may come while the database is down: then the run is resumed instead.
        do {
            try await record("end the failed \(phase.rawValue) step") { try await journal.endStep(step, .fail, error: stop.failure.message, at: clock.now) }
            try await record("record why \(target.id) is left out") {
                try await journal.noteLeftOut(service: run.service, target: target, run: run.id, phase: phase,
                                        reason: "deploying \(run.version): \(stop.failure.message)", at: clock.now)
            }
        } catch {
            return error
        }
        return stop
    }

    func wait(_ target: Target, until rule: Waiter.Rule, timeout: Duration, phase: Phase,
              firstPoll: Duration = .zero) async throws -> Waiter.Outcome {
        let waiter = Waiter(clock: clock, pollInterval: plan.pollInterval, timeout: timeout, firstPoll: firstPoll)
        let metrics = context.metrics, service = run.service
        var previousPoll = clock.now
        // Every poll's answer goes into the run's log: when a wait stalls, the operator
        // sees what the load balancer said and when.
        return try await waiter.wait(for: target, until: rule, on: loadBalancer) { result in
            let now = clock.now
            switch result {
            case .success(let observation):
                observe(target, observation)
                note("\(target.id): \(observation)", target: target, phase: phase)
                let met = rule.isMet(by: observation)
                metrics.waiterPolled(service: service, rule: rule, result: met ? "met" : "not_yet")
                if met { metrics.waiterNoticed(service: service, rule: rule, lag: now.since(previousPoll)) }
            case .failure(let error):
                note("\(target.id): poll failed, will retry: \(error)", target: target, phase: phase)
                metrics.waiterPolled(service: service, rule: rule, result: "error")
            }
            previousPoll = now
        }
    }

    /// A state write, retried until it succeeds: the roll pauses rather than fails, and takes
    /// no load-balancer action whose intent is not committed. Lines waiting to be written go
    /// first, so the log stays in order.
    /// Runs on the store's own threads when the context has them (a SQLite busy wait never
    /// holds one of Swift's cooperative threads).
    func record<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let log = self.log, clock = self.clock, run = self.run.id, work = context.blocking
        // A holder past its local deadline stops retrying: the lease may be someone else's.
        let holding = LeaseGuard.current
        return try await durable.perform(what, attempt: {
            try holding?.check(run: run)
            // The lines before this write go first (written on the store's threads).
            _ = try await work.run { log.flush(at: clock.now) }
            return try await body()
        })
    }

    /// Right before a hook starts and each load-balancer change: throws `LeaseLost` once this
    /// holder may no longer act on the run (its lease lost, or its local deadline passed
    /// because it could not renew), whether or not the database can say so now.
    func mayAct() throws {
        try LeaseGuard.current?.check(run: run.id)
    }

    func flushLog() async {
        var delay = Duration.milliseconds(100)
        while !log.flush(at: clock.now) {
            // Shutdown does not wait for the database: the lines left are in this process only.
            if Task.isCancelled {
                logger.error("\(log.waiting) log line(s) could not be written before stopping")
                return
            }
            try? await clock.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    func observe(_ target: Target, _ observation: TargetObservation) {
        context.observer?.observed(service: run.service, target: target, observation: observation, run: run.id, at: clock.now)
    }

    func note(_ text: String, target: Target? = nil, phase: Phase? = nil) {
        logger.info("\(text)", metadata: target.map { ["target.id": "\($0.id)"] })
        log.append(.system, target: target?.id, phase: phase, text: text, at: clock.now)
    }
}
