#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a step does to one target. `restore` is RegisterTargets plus the wait until healthy.
public enum Phase: String, Codable, Sendable, CaseIterable {
    case prepare, drain, deploy, verify, restore
}

public enum StepStatus: String, Codable, Sendable, CaseIterable {
    case running, succeeded, failed

    public var isTerminal: Bool { self != .running }
}

public enum StepEvent: String, Sendable, CaseIterable {
    case succeed, fail
}

extension StepStatus {
    public func applying(_ event: StepEvent) throws -> StepStatus {
        switch (self, event) {
        case (.running, .succeed): return .succeeded
        case (.running, .fail): return .failed
        default: throw InvalidTransition(from: rawValue, event: event.rawValue)
        }
    }
}

public typealias RunID = Int64
public typealias StepID = Int64

/// One (target, phase) of a run.
public struct Step: Sendable, Equatable {
    public var id: StepID
    public var runID: RunID
    public var targetID: String
    public var targetPort: Int
    public var phase: Phase
    public var status: StepStatus
    public var startedAt: Date
    public var finishedAt: Date?
    public var error: String?
    /// The hook's process group, for the hook phases, once it started.
    public var hookProcess: HookProcess?

    public init(id: StepID, runID: RunID, targetID: String, targetPort: Int, phase: Phase, status: StepStatus,
                startedAt: Date, finishedAt: Date? = nil, error: String? = nil, hookProcess: HookProcess? = nil) {
        self.id = id
        self.runID = runID
        self.targetID = targetID
        self.targetPort = targetPort
        self.phase = phase
        self.status = status
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.error = error
        self.hookProcess = hookProcess
    }
}
