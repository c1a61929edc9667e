#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where a target of a run's frozen plan stands.
public enum TargetProgress: String, Codable, Sendable, CaseIterable {
    /// Not touched by this run yet.
    case pending
    /// Out of the load balancer for this run (taken out, or found out and taken on).
    case out
    /// Back in service at the run's version.
    case done
}

/// One target of a run's plan, frozen when the run starts.
public struct PlannedTarget: Sendable, Equatable {
    public var target: Target
    public var progress: TargetProgress
    /// Once the run is rolling back: whether this target still owes it (`pending`) or runs
    /// the previous version again (`done`); nil before a rollback and for untouched targets.
    public var rollback: RollbackProgress?

    public init(target: Target, progress: TargetProgress, rollback: RollbackProgress? = nil) {
        self.target = target
        self.progress = progress
        self.rollback = rollback
    }
}

/// A touched target's part in its run's rollback.
public enum RollbackProgress: String, Sendable, CaseIterable {
    case pending, done
}

/// A target rollgate took out of a load balancer and has not seen back in service.
public struct LeftOutTarget: Sendable, Equatable {
    public var service: String
    public var target: Target
    /// The run that took it out (or last took it on).
    public var runID: RunID
    /// The phase it was in when that run last wrote of it.
    public var phase: Phase
    public var reason: String
    public var since: Date

    public init(service: String, target: Target, runID: RunID, phase: Phase, reason: String, since: Date) {
        self.service = service
        self.target = target
        self.runID = runID
        self.phase = phase
        self.reason = reason
        self.since = since
    }
}

/// What a run does: roll a version through the fleet, or put one left-out target back
/// (RegisterTargets and the wait until healthy, no hooks).
public enum RunKind: Sendable, Equatable {
    case deploy
    case restore(Target)

    /// What the store keeps of the kind (the target of a restore has columns of its own).
    public enum Name: String, Sendable, CaseIterable {
        case deploy, restore
    }

    public var kindName: Name {
        switch self {
        case .deploy: return .deploy
        case .restore: return .restore
        }
    }

    public var name: String { kindName.rawValue }
}

/// A lock on a service: deploys are refused (or wait) until it is removed or expires.
public struct ServiceLock: Sendable, Equatable {
    public var service: String
    public var reason: String
    public var lockedBy: String
    public var createdAt: Date
    public var expiresAt: Date?

    public init(service: String, reason: String, lockedBy: String, createdAt: Date, expiresAt: Date?) {
        self.service = service
        self.reason = reason
        self.lockedBy = lockedBy
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    /// Expired locks end by themselves: a lock holds while its expiry is in the future.
    public func holds(at now: Date) -> Bool { expiresAt.map { now < $0 } ?? true }
}
