#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What happened: to a run (what notifications are made of), to one of its steps, or to a
/// target's state as the load balancer reported it (these two only feed the events stream).
public enum RunEventKind: String, Sendable, CaseIterable {
    case queued, started
    case targetDone = "target_done"
    case targetLeftOut = "target_left_out"
    case succeeded, failed, cancelled
    case stepStarted = "step_started"
    case stepSucceeded = "step_succeeded"
    case stepFailed = "step_failed"
    case targetState = "target_state"
    /// An operator told rollgate a left-out target is gone for good (`forget`): who and why.
    case targetForgotten = "target_forgotten"

    /// Run changes are told to people; step and target-state changes are for watchers only.
    public var notifies: Bool {
        switch self {
        case .stepStarted, .stepSucceeded, .stepFailed, .targetState: return false
        default: return true
        }
    }
}

public struct RunEventRecord: Sendable, Equatable {
    public var seq: Int64
    /// 0 for a target-state change seen outside any run.
    public var runID: RunID
    public var service: String
    public var event: RunEventKind
    public var targetID: String?
    /// The step's phase, for step events.
    public var phase: Phase?
    public var detail: String?
    public var at: Date

    public init(seq: Int64, runID: RunID, service: String, event: RunEventKind, targetID: String? = nil, phase: Phase? = nil, detail: String? = nil, at: Date) {
        self.seq = seq
        self.runID = runID
        self.service = service
        self.event = event
        self.targetID = targetID
        self.phase = phase
        self.detail = detail
        self.at = at
    }
}

public enum DeliveryStatus: String, Sendable, CaseIterable {
    case pending, delivered, failed
}

public struct DeliveryRecord: Sendable, Equatable {
    public var destination: String
    public var seq: Int64
    public var runID: RunID
    public var event: RunEventKind
    public var status: DeliveryStatus
    public var attempts: Int
    public var lastError: String?
    public var deliveredAt: Date?

    public init(destination: String, seq: Int64, runID: RunID, event: RunEventKind, status: DeliveryStatus, attempts: Int, lastError: String? = nil, deliveredAt: Date? = nil) {
        self.destination = destination
        self.seq = seq
        self.runID = runID
        self.event = event
        self.status = status
        self.attempts = attempts
        self.lastError = lastError
        self.deliveredAt = deliveredAt
    }
}
