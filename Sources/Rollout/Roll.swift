import Logging

/// Rolls one run through a service's targets, one at a time:
/// preflight, prepare, deregister + wait drained, deploy, verify, register + wait healthy.
/// Any failure stops the run; the target in hand is left out of the load balancer.
public struct Roll: Sendable {
    public enum Outcome: Sendable, Equatable {
        case succeeded
        case failed(String)
        /// Stopped between targets on request; every target touched is back in service.
        case cancelled(String)
    }

    public let run: Run
    /// The plan as configured; `perform` may size unset waits from the group.
    public let plan: ServicePlan
    public let loadBalancer: any LoadBalancer
    public let executor: any HookExecutor
    public let journal: any RunJournal
    public let clock: any RolloutClock
    public let logger: Logger

    public init(run: Run, plan: ServicePlan, loadBalancer: any LoadBalancer, executor: any HookExecutor,
                journal: any RunJournal, clock: any RolloutClock, logger: Logger) {
        self.run = run
        self.plan = plan
        self.loadBalancer = loadBalancer
        self.executor = executor
        self.journal = journal
        self.clock = clock
        var logger = logger
        logger[metadataKey: "run.id"] = "\(run.id)"
        logger[metadataKey: "service"] = "\(run.service)"
        self.logger = logger
    }

    /// A failure that stops the run, with the message the operator reads in `error`.
    struct Stop: Error { let message: String }

    public func perform() async -> Outcome {
        do {
            let sized = try await sizedPlan()
            return await Roll(run: run, plan: sized, loadBalancer: loadBalancer, executor: executor, journal: journal,
                              clock: clock, logger: logger).rollAll()
        } catch {
            let message = "the target group cannot be read: \(error)"
            note("run failed: \(message)")
            return .failed(message)
        }
    }

    /// Unset waits sized from what the target group says of itself.
    func sizedPlan() async throws -> ServicePlan {
        guard plan.sizeDrainFromGroup || plan.sizeHealthyFromGroup, let timed = loadBalancer as? any TargetGroupTimed else { return plan }
        let timing = try await timed.timing()
        var sized = plan
        sized.sizeDrainFromGroup = false
        sized.sizeHealthyFromGroup = false
        if plan.sizeDrainFromGroup, let drain = timing.drainTimeout {
            sized.drainTimeout = drain
            note("drain_timeout \(drain.humanText): the group's deregistration delay \(timing.deregistrationDelay!.humanText) + \(GroupTiming.margin.humanText)")
        }
        if plan.sizeHealthyFromGroup, let healthy = timing.healthyTimeout {
            sized.healthyTimeout = healthy
            note("healthy_timeout \(healthy.humanText): \(timing.healthyThreshold!) checks \(timing.healthCheckInterval!.humanText) apart + \((timing.healthCheckTimeout ?? .zero).humanText) + \(GroupTiming.margin.humanText)")
        }
        return sized
    }

    func rollAll() async -> Outcome {
        do {
            let targets = try await loadBalancer.targets().map(\.target).sorted()
            guard !targets.isEmpty else { throw Stop(message: "the target group has no registered targets") }
            note("rolling \(run.service) to \(run.version) over \(targets.count) target(s): \(targets.map(\.id).joined(separator: ", "))")
            for (index, target) in targets.enumerated() {
                if index > 0, try journal.isCancelRequested(run.id) {
                    let message = "cancelled after \(index) of \(targets.count) target(s); \(targets[index...].map(\.id).joined(separator: ", ")) not touched"
                    note(message)
                    return .cancelled(message)
                }
                do {
                    try await roll(target, number: index + 1, of: targets)
                } catch is CancellationError {
                    return .failed(await interrupted(on: target))
                }
            }
            note("all \(targets.count) target(s) run \(run.version) and are healthy")
            return .succeeded
        } catch let stop as Stop {
            note("run failed: \(stop.message)")
            return .failed(stop.message)
        } catch is CancellationError {
            return .failed("interrupted: rollgate is shutting down")
        } catch {
            note("run failed: \(error)")
            return .failed("\(error)")
        }
    }

    /// The run was stopped under it (shutdown): say where, and what the load balancer says now.
    private func interrupted(on target: Target) async -> String {
        let message = "interrupted: rollgate was stopped while rolling \(target.id)" + (await loadBalancer.standing(of: target))
        note(message, target: target)
        return message
    }

    private func roll(_ target: Target, number: Int, of targets: [Target]) async throws {
        note("target \(number)/\(targets.count): \(target)", target: target)
        try await preflight(target, among: targets)
        let host = try await address(of: target)
        if let command = plan.hooks.prepare {
            try await hook(.prepare, command, on: target, host: host)
        }
        try await drain(target)
        try await hook(.deploy, plan.hooks.deploy, on: target, host: host)
        if let command = plan.hooks.verify {
            try await hook(.verify, command, on: target, host: host)
        }
        try await restore(target)
    }

    /// Never take capacity below N-1: every other target must be healthy first.
    private func preflight(_ target: Target, among targets: [Target]) async throws {
        let others = Set(targets).subtracting([target])
        guard !others.isEmpty else { return }
        let start = clock.now
        while true {
            let health = try await loadBalancer.targets()
            let healthyOthers = Set(health.filter { $0.health.state == .healthy }.map(\.target))
            let missing = others.subtracting(healthyOthers).sorted()
            if missing.isEmpty { return }
            let states = missing.map { target in
                "\(target.id) is \(health.first { $0.target == target }?.health.description ?? "not registered")"
            }.joined(separator: ", ")
            if clock.now.since(start) >= plan.healthyTimeout {
                throw Stop(message: "preflight for \(target.id): \(states) after \(plan.healthyTimeout.humanText); not taking \(target.id) out (capacity would fall below N-1)")
            }
            note("preflight: waiting, \(states)", target: target)
            try await clock.sleep(for: plan.pollInterval)
        }
    }

    private func drain(_ target: Target) async throws {
        let step = try journal.beginStep(run: run.id, target: target, phase: .drain, at: clock.now)
        do {
            note("DeregisterTargets \(target)", target: target, phase: .drain)
            try await loadBalancer.deregister(target)
            let outcome = try await wait(target, until: .drained, timeout: plan.drainTimeout, phase: .drain)
            if case .timedOut(let last) = outcome {
                throw Stop(message: "\(target.id) not drained after \(plan.drainTimeout.humanText): last state \(last?.description ?? "unknown"); it stays deregistered")
            }
            try journal.endStep(step, .succeed, error: nil, at: clock.now)
        } catch {
            try? journal.endStep(step, .fail, error: describe(error), at: clock.now)
            throw wrap(error, target: target, phase: .drain)
        }
    }

    private func restore(_ target: Target) async throws {
        let step = try journal.beginStep(run: run.id, target: target, phase: .restore, at: clock.now)
        do {
            note("RegisterTargets \(target)", target: target, phase: .restore)
            try await loadBalancer.register(target)
            let outcome = try await wait(target, until: .inService, timeout: plan.healthyTimeout, phase: .restore)
            if case .timedOut(let last) = outcome {
                // An ALB sends traffic to unhealthy targets when all are unhealthy: take it out again.
                note("\(target.id) not healthy in time; DeregisterTargets so it cannot serve", target: target, phase: .restore)
                try? await loadBalancer.deregister(target)
                throw Stop(message: "\(target.id) not healthy after \(plan.healthyTimeout.humanText): last state \(last?.description ?? "unknown"); deregistered again")
            }
            try journal.endStep(step, .succeed, error: nil, at: clock.now)
        } catch {
            try? journal.endStep(step, .fail, error: describe(error), at: clock.now)
            throw wrap(error, target: target, phase: .restore)
        }
    }

    /// Where the target is, asked once before it is touched; a lookup that fails stops the
    /// run while the target still serves.
    private func address(of target: Target) async throws -> String? {
        guard let addressing = loadBalancer as? any TargetAddressing else { return nil }
        do {
            let host = try await addressing.host(of: target)
            if let host { note("\(target.id) is at \(host)", target: target) }
            return host
        } catch {
            throw Stop(message: "cannot find the address of \(target.id) (for ROLLGATE_TARGET_HOST): \(error); it was not touched")
        }
    }

    private func hook(_ phase: Phase, _ command: String, on target: Target, host: String?) async throws {
        let step = try journal.beginStep(run: run.id, target: target, phase: phase, at: clock.now)
        var environment = [
            "ROLLGATE_RUN_ID": "\(run.id)",
            "ROLLGATE_SERVICE": run.service,
            "ROLLGATE_VERSION": run.version,
            "ROLLGATE_TARGET_ID": target.id,
            "ROLLGATE_TARGET_PORT": "\(target.port)",
            "ROLLGATE_PHASE": phase.rawValue,
        ]
        if let host { environment["ROLLGATE_TARGET_HOST"] = host }
        let invocation = HookInvocation(phase: phase, command: command, environment: environment, timeout: plan.hookTimeout)
        note("\(phase.rawValue) hook: \(command)", target: target, phase: phase)
        let journal = self.journal, clock = self.clock, runID = run.id, logger = self.logger
        let outcome = await executor.run(invocation, started: { process in
            do {
                try journal.recordHookProcess(process, step: step)
            } catch {
                logger.error("cannot record the hook's process group", metadata: ["error": "\(error)"])
            }
        }) { stream, line in
            do {
                try journal.log(run: runID, stream: stream, target: target.id, phase: phase, text: line, at: clock.now)
            } catch {
                logger.error("cannot store hook output", metadata: ["error": "\(error)"])
            }
        }
        if Task.isCancelled {
            try? journal.endStep(step, .fail, error: "interrupted", at: clock.now)
            throw CancellationError()
        }
        if outcome.succeeded {
            try journal.endStep(step, .succeed, error: nil, at: clock.now)
            return
        }
        let message = "\(phase.rawValue) hook failed on \(target.id): \(outcome)"
        try? journal.endStep(step, .fail, error: message, at: clock.now)
        throw Stop(message: phase == .prepare ? message : message + "; \(target.id) stays deregistered")
    }

    private func wait(_ target: Target, until rule: Waiter.Rule, timeout: Duration, phase: Phase) async throws -> Waiter.Outcome {
        let waiter = Waiter(clock: clock, pollInterval: plan.pollInterval, timeout: timeout)
        // Every poll's answer goes into the run's log: when a wait stalls, the operator
        // sees what the load balancer said and when.
        return try await waiter.wait(for: target, until: rule, on: loadBalancer) { result in
            switch result {
            case .success(let observation): note("\(target.id): \(observation)", target: target, phase: phase)
            case .failure(let error): note("\(target.id): poll failed, will retry: \(error)", target: target, phase: phase)
            }
        }
    }

    private func describe(_ error: Error) -> String {
        if error is CancellationError { return "interrupted" }
        return (error as? Stop)?.message ?? "\(error)"
    }

    private func wrap(_ error: Error, target: Target, phase: Phase) -> Error {
        if error is Stop || error is CancellationError { return error }
        return Stop(message: "\(phase.rawValue) of \(target.id) failed: \(error)")
    }

    private func note(_ text: String, target: Target? = nil, phase: Phase? = nil) {
        logger.info("\(text)", metadata: target.map { ["target.id": "\($0.id)"] })
        do {
            try journal.log(run: run.id, stream: .system, target: target?.id, phase: phase, text: text, at: clock.now)
        } catch {
            logger.error("cannot store log line", metadata: ["error": "\(error)"])
        }
    }
}
