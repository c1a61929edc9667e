/// Picks up a run another process left `running` (crash, `kill -9`, shutdown, lost lease):
/// ends the hook the dead process may have left running, closes its open steps, records
/// the interruption, and hands the run back to be resumed. A run interrupted more than
/// `limit` times in a row (no target finished in between) fails, listing every interruption:
/// a crash loop must not roll forever. Its target in hand stays recorded as left out.
public struct Recovery: Sendable {
    let queue: any RunQueue
    let clock: any RolloutClock
    let executor: any HookExecutor
    public var limit = 3

    public init(queue: any RunQueue, clock: any RolloutClock, executor: any HookExecutor) {
        self.queue = queue
        self.clock = clock
        self.executor = executor
    }

    public enum Disposition: Sendable, Equatable {
        /// Roll it again from where it stands.
        case resume(Run)
        /// Failed: interrupted too often.
        case fail(RunFailure)
    }

    /// What to do with a run just taken over (its `interruptions` already counts this one).
    public func takeOver(_ run: Run) async throws -> Disposition {
        var note = describe(run)
        // A hook the dead process started may still be running on the instance.
        for step in run.steps where step.status == .running {
            if let process = step.hookProcess {
                let ended = executor.endLeftover(process, of: run.id)
                if ended > 0 {
                    note += "; its \(step.phase.rawValue) hook was still running (process group \(process.group)) and was killed"
                }
            }
            try await queue.endStep(step.id, .fail, error: "interrupted", at: clock.now)
        }
        try await queue.recordInterruption(run: run.id, note: note, at: clock.now)
        try await queue.log(run: run.id, stream: .system, target: run.currentTarget, phase: nil,
                      text: "\(note) (interruption \(run.interruptions) in a row)", at: clock.now)
        if run.interruptions > limit {
            let all = try await queue.interruptions(of: run.id).suffix(run.interruptions)
            let message = "interrupted \(run.interruptions) times in a row without finishing a target; not resuming again: "
                + all.enumerated().map { "\($0.offset + 1). \($0.element)" }.joined(separator: " ")
            return .fail(RunFailure(.interruptedTooOften, message))
        }
        var resumed = run
        for index in resumed.steps.indices where resumed.steps[index].status == .running {
            resumed.steps[index].status = .failed
        }
        return .resume(resumed)
    }

    private func describe(_ run: Run) -> String {
        guard let step = run.steps.last else {
            return "interrupted: rollgate stopped before the run touched any target"
        }
        let state = step.status == .succeeded ? "after" : "during"
        return "interrupted: rollgate stopped \(state) \(step.phase.rawValue) of \(step.targetID)"
    }
}
