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
        var plans: [RunID: [PlannedTarget]] = [:]
        var leftOut: [LeftOutTarget] = []
        var leases: [RunID: (owner: LeaseOwner, until: Date)] = [:]
        var interruptions: [RunID: [String]] = [:]
        var locks: [String: ServiceLock] = [:]
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

    public func lock(_ lock: ServiceLock) { state.withLock { $0.locks[lock.service] = lock } }
    public func setLease(of run: RunID, owner: LeaseOwner, until: Date) { state.withLock { $0.leases[run] = (owner, until) } }
    public func bumpInterruptions(of run: RunID) {
        state.withLock { s in if let i = s.runs.firstIndex(where: { $0.id == run }) { s.runs[i].interruptions += 1 } }
    }
    public func lease(of run: RunID) -> (owner: LeaseOwner, until: Date)? { state.withLock { $0.leases[run] } }
    /// Simulates the lease running out (a dead owner that never renews).
    public func expireLease(of run: RunID) { state.withLock { $0.leases[run]?.until = .distantPast } }

    public func claimNext(owner: LeaseOwner, until: Date, at now: Date) throws -> Run? {
        try state.withLock { s in
            let busy = Set(s.runs.filter { $0.status == .running }.map(\.service))
            let locked = Set(s.locks.values.filter { $0.holds(at: now) }.map(\.service))
            guard let index = s.runs.firstIndex(where: { $0.status == .queued && !busy.contains($0.service) && ($0.kind != .deploy || !locked.contains($0.service)) }) else { return nil }
            s.runs[index].status = try s.runs[index].status.applying(.start)
            s.runs[index].startedAt = now
            s.leases[s.runs[index].id] = (owner, until)
            return s.runs[index]
        }
    }

    public func takeOver(owner: LeaseOwner, until: Date, at now: Date, excluding: Set<RunID>,
                         isGone: (LeaseOwner) -> Bool) throws -> [Run] {
        state.withLock { s in
            var taken: [Run] = []
            for index in s.runs.indices where s.runs[index].status == .running && !excluding.contains(s.runs[index].id) {
                let id = s.runs[index].id
                if let lease = s.leases[id], lease.until > now, !isGone(lease.owner) { continue }
                s.leases[id] = (owner, until)
                s.runs[index].interruptions += 1
                taken.append(s.runs[index])
            }
            return taken
        }
    }

    public func renewLease(run: RunID, owner: LeaseOwner, until: Date) throws {
        try state.withLock { s in
            guard s.leases[run]?.owner == owner else { throw LeaseLost(run: run) }
            s.leases[run]?.until = until
        }
    }

    public func releaseLease(run: RunID, owner: LeaseOwner) throws {
        state.withLock { s in if s.leases[run]?.owner == owner { s.leases[run]?.until = .distantPast } }
    }

    public func recordInterruption(run: RunID, note: String, at: Date) throws {
        state.withLock { $0.interruptions[run, default: []].append(note) }
    }

    public func interruptions(of run: RunID) throws -> [String] { state.withLock { $0.interruptions[run] ?? [] } }

    public func plan(of run: RunID) throws -> [PlannedTarget] { state.withLock { $0.plans[run] ?? [] } }

    public func freezePlan(run: RunID, targets: [Target]) throws -> [PlannedTarget] {
        state.withLock { s in
            if let existing = s.plans[run], !existing.isEmpty { return existing }
            let plan = targets.map { PlannedTarget(target: $0, progress: .pending) }
            s.plans[run] = plan
            return plan
        }
    }

    public func markOut(run: RunID, service: String, target: Target, phase: Phase, reason: String,
                        owner: LeaseOwner, at now: Date) throws {
        try state.withLock { s in
            guard s.leases[run]?.owner == owner else { throw LeaseLost(run: run) }
            s.setProgress(run, target, .out)
            s.leftOut.removeAll { $0.service == service && $0.target == target }
            s.leftOut.append(LeftOutTarget(service: service, target: target, runID: run, phase: phase, reason: reason, since: now))
        }
    }

    public func markDone(run: RunID, service: String, target: Target, owner: LeaseOwner, at now: Date) throws {
        try state.withLock { s in
            guard s.leases[run]?.owner == owner else { throw LeaseLost(run: run) }
            s.setProgress(run, target, .done)
            s.leftOut.removeAll { $0.service == service && $0.target == target }
            if let index = s.runs.firstIndex(where: { $0.id == run }) { s.runs[index].interruptions = 0 }
        }
    }

    public func noteLeftOut(service: String, target: Target, run: RunID, phase: Phase, reason: String, at now: Date) throws {
        state.withLock { s in
            let since = s.leftOut.first { $0.service == service && $0.target == target }?.since ?? now
            s.leftOut.removeAll { $0.service == service && $0.target == target }
            s.leftOut.append(LeftOutTarget(service: service, target: target, runID: run, phase: phase, reason: reason, since: since))
        }
    }

    public func leftOut(service: String) throws -> [LeftOutTarget] {
        state.withLock { s in s.leftOut.filter { $0.service == service } }
    }

    public func finish(_ run: RunID, _ event: RunEvent, error: String?, owner: LeaseOwner?, at now: Date) throws {
        try state.withLock { s in
            if let owner, s.leases[run]?.owner != owner { throw LeaseLost(run: run) }
            guard let index = s.runs.firstIndex(where: { $0.id == run }) else { return }
            s.runs[index].status = try s.runs[index].status.applying(event)
            s.runs[index].finishedAt = now
            s.runs[index].error = error
        }
    }

    public func finish(_ run: RunID, _ event: RunEvent, error: String?, at now: Date) throws {
        try finish(run, event, error: error, owner: nil, at: now)
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

    /// Called with each batch of log lines before it is stored, outside the store's lock: a
    /// test can hold a write back, or make it fail.
    public let beforeLogBatch = Mutex<(@Sendable ([LogEntry]) throws -> Void)?>(nil)

    public func log(run: RunID, _ lines: [LogEntry]) throws {
        if let gate = beforeLogBatch.withLock({ $0 }) { try gate(lines) }
        for line in lines { try log(run: run, stream: line.stream, target: line.target, phase: line.phase, text: line.text, at: line.at) }
    }

    public func log(run: RunID, stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at now: Date) throws {
        state.withLock { s in
            s.logs.append(LogLine(seq: Int64(s.logs.count + 1), runID: run, at: now, stream: stream,
                                  targetID: target, phase: phase, text: text))
        }
    }

    public func isPromoteRequested(_ run: RunID) throws -> Bool {
        state.withLock { s in s.runs.first { $0.id == run }?.promoteRequested ?? false }
    }

    /// Asks the run to end its canary bake.
    public func requestPromote(_ run: RunID) {
        state.withLock { s in
            if let index = s.runs.firstIndex(where: { $0.id == run }) { s.runs[index].promoteRequested = true }
        }
    }

    public func previousGoodVersion(service: String, before run: RunID, otherThan version: String) throws -> String? {
        state.withLock { s in
            s.runs.last { $0.service == service && $0.status == .succeeded && $0.kind == .deploy && $0.id < run && $0.version != version }?.version
        }
    }

    public func recordRollback(run: RunID, to version: String?, at now: Date) throws {
        state.withLock { s in
            if let index = s.runs.firstIndex(where: { $0.id == run }) { s.runs[index].rollbackTo = version }
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

extension MemoryRunStore.State {
    mutating func setProgress(_ run: RunID, _ target: Target, _ progress: TargetProgress) {
        guard let index = plans[run]?.firstIndex(where: { $0.target == target }) else { return }
        plans[run]?[index].progress = progress
    }
}
