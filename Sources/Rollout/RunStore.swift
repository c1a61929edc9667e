/// What the roll writes as it goes. Every write is durable before the action it records.
public protocol RunJournal: Sendable {
    func beginStep(run: RunID, target: Target, phase: Phase, at: Date) throws -> StepID
    func endStep(_ step: StepID, _ event: StepEvent, error: String?, at: Date) throws
    func recordHookProcess(_ process: HookProcess, step: StepID) throws
    func log(run: RunID, stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at: Date) throws
    func isCancelRequested(_ run: RunID) throws -> Bool
}

/// The durable queue the dispatcher takes runs from.
public protocol RunQueue: RunJournal {
    /// Atomically moves the oldest queued run of a service with nothing running to `running`.
    func claimNext(at: Date) throws -> Run?
    func finish(_ run: RunID, _ event: RunEvent, error: String?, at: Date) throws
    /// Runs with a status, oldest first, with their steps.
    func runs(withStatus status: RunStatus) throws -> [Run]
}
