/// On start-up, runs still `running` were cut off by a crash or `kill -9`. Until runs can
/// resume, each ends `failed` with the reason `interrupted`, naming the target it was on
/// and what the load balancer says of that target now, so the operator knows what to fix.
public struct Recovery: Sendable {
    let queue: any RunQueue
    let clock: any RolloutClock
    let executor: any HookExecutor
    let loadBalancer: @Sendable (String) -> (any LoadBalancer)?

    public init(queue: any RunQueue, clock: any RolloutClock, executor: any HookExecutor,
                loadBalancer: @escaping @Sendable (String) -> (any LoadBalancer)?) {
        self.queue = queue
        self.clock = clock
        self.executor = executor
        self.loadBalancer = loadBalancer
    }

    /// Ends every interrupted run; returns their ids with the error recorded.
    public func resolveInterrupted() async throws -> [(RunID, String)] {
        var resolved: [(RunID, String)] = []
        for run in try queue.runs(withStatus: .running) {
            var message = await describe(run)
            // A hook the dead process started may still be running on the instance.
            for step in run.steps where step.status == .running {
                guard let process = step.hookProcess else { continue }
                let ended = executor.endLeftover(process, of: run.id)
                if ended > 0 {
                    message += "; its \(step.phase.rawValue) hook was still running (process group \(process.group)) and was killed"
                }
            }
            for step in run.steps where step.status == .running {
                try queue.endStep(step.id, .fail, error: "interrupted", at: clock.now)
            }
            try queue.log(run: run.id, stream: .system, target: run.currentTarget, phase: nil, text: message, at: clock.now)
            try queue.finish(run.id, .fail, error: message, at: clock.now)
            resolved.append((run.id, message))
        }
        return resolved
    }

    private func describe(_ run: Run) async -> String {
        guard let step = run.steps.last else {
            return "interrupted: rollgate stopped before the run touched any target"
        }
        let target = Target(id: step.targetID, port: step.targetPort)
        var message = "interrupted: rollgate stopped during \(step.phase.rawValue) of \(step.targetID)"
        guard let loadBalancer = loadBalancer(run.service) else {
            return message + "; service \(run.service) is no longer configured, its load balancer was not asked"
        }
        return message + (await loadBalancer.standing(of: target))
    }
}

extension LoadBalancer {
    /// What the load balancer says now of a target a run was cut off on, for the run's
    /// error: `; the load balancer now says X is unused (...): it is out of service, ...`.
    func standing(of target: Target) async -> String {
        do {
            let observation = try await health(of: target)
            var text = "; the load balancer now says \(target.id) is \(observation)"
            if !Waiter.Rule.inService.isMet(by: observation) {
                text += ": it is out of service, check it and register it again"
            }
            return text
        } catch {
            return "; asking the load balancer about \(target.id) failed: \(error)"
        }
    }
}
