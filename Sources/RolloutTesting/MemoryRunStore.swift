import Rollout
import Synchronization

/// An in-memory `RunQueue` with the same rules as the SQLite store (one running run per
/// service, FIFO), for domain tests that need no file.
public final class MemoryRunStore: RunQueue, SimulatedTargetStore {
    struct State {
        var runs: [Run] = []
        var logs: [LogLine] = []
        var nextStep: StepID = 1
        var simulated: [String: [SimulatedTarget]] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    @discardableResult
    public func enqueue(service: String, version: String, at now: Date) -> Run {
        state.withLock { s in
            let run = Run(id: RunID(s.runs.count + 1), service: service, version: version, createdAt: now)
            s.runs.append(run)
            return run
        }
    }

    /// Puts a run as a crashed process would have left it: running, with steps.
    public func insert(_ run: Run) { state.withLock { $0.runs.append(run) } }

    public func run(_ id: RunID) -> Run? { state.withLock { s in s.runs.first { $0.id == id } } }
    public var logs: [LogLine] { state.withLock { $0.logs } }
    public func requestCancel(_ id: RunID) {
        state.withLock { s in if let i = s.runs.firstIndex(where: { $0.id == id }) { s.runs[i].cancelRequested = true } }
    }

    public func claimNext(at now: Date) throws -> Run? {
        try state.withLock { s in
            let busy = Set(s.runs.filter { $0.status == .running }.map(\.service))
            guard let index = s.runs.firstIndex(where: { $0.status == .queued && !busy.contains($0.service) }) else { return nil }
            s.runs[index].status = try s.runs[index].status.applying(.start)
            s.runs[index].startedAt = now
            return s.runs[index]
        }
    }

    public func finish(_ run: RunID, _ event: RunEvent, error: String?, at now: Date) throws {
        try state.withLock { s in
            guard let index = s.runs.firstIndex(where: { $0.id == run }) else { return }
            s.runs[index].status = try s.runs[index].status.applying(event)
            s.runs[index].finishedAt = now
            s.runs[index].error = error
        }
    }

    public func runs(withStatus status: RunStatus) throws -> [Run] {
        state.withLock { s in s.runs.filter { $0.status == status } }
    }

    public func beginStep(run: RunID, target: Target, phase: Phase, at now: Date) throws -> StepID {
        state.withLock { s in
            let id = s.nextStep
            s.nextStep += 1
            if let index = s.runs.firstIndex(where: { $0.id == run }) {
                s.runs[index].steps.append(Step(id: id, runID: run, targetID: target.id, targetPort: target.port,
                                                phase: phase, status: .running, startedAt: now))
            }
            return id
        }
    }

    public func endStep(_ step: StepID, _ event: StepEvent, error: String?, at now: Date) throws {
        try state.withLock { s in
            for r in s.runs.indices {
                if let i = s.runs[r].steps.firstIndex(where: { $0.id == step }) {
                    s.runs[r].steps[i].status = try s.runs[r].steps[i].status.applying(event)
                    s.runs[r].steps[i].finishedAt = now
                    s.runs[r].steps[i].error = error
                }
            }
        }
    }

    public func recordHookProcess(_ process: HookProcess, step: StepID) throws {
        state.withLock { s in
            for r in s.runs.indices {
                if let i = s.runs[r].steps.firstIndex(where: { $0.id == step }) { s.runs[r].steps[i].hookProcess = process }
            }
        }
    }

    public func log(run: RunID, stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at now: Date) throws {
        state.withLock { s in
            s.logs.append(LogLine(seq: Int64(s.logs.count + 1), runID: run, at: now, stream: stream,
                                  targetID: target, phase: phase, text: text))
        }
    }

    public func isCancelRequested(_ run: RunID) throws -> Bool {
        state.withLock { s in s.runs.first { $0.id == run }?.cancelRequested ?? false }
    }

    public func simulatedTargets(service: String) throws -> [SimulatedTarget] {
        state.withLock { $0.simulated[service] ?? [] }
    }

    public func saveSimulatedTarget(service: String, _ target: SimulatedTarget) throws {
        state.withLock { s in
            var list = s.simulated[service] ?? []
            if let i = list.firstIndex(where: { $0.target.id == target.target.id }) { list[i] = target } else { list.append(target) }
            s.simulated[service] = list
        }
    }
}
