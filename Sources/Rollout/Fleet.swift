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

/// What runs where, as an operator reads it: how many of a service's targets serve, and
/// which version runs on which (the version rollgate last put there; `unknown` for a target
/// it never deployed).
public struct FleetVersions: Sendable, Equatable {
    /// One target: its state as the load balancer says it (or `left_out`) and its version.
    public struct Entry: Sendable, Equatable {
        public var target: Target
        public var state: String
        public var version: TargetVersion?

        public init(target: Target, state: String, version: TargetVersion?) {
            self.target = target
            self.state = state
            self.version = version
        }
    }

    /// Targets running one version (nil: unknown).
    public struct Group: Sendable, Equatable {
        public var version: String?
        public var targets: [String]
    }

    public let entries: [Entry]

    /// `targets`: what the load balancer lists now with their states; `versions`: what
    /// rollgate recorded.
    public init(targets: [(target: Target, state: String)], versions: [TargetVersion]) {
        entries = targets.map { item in Entry(target: item.target, state: item.state, version: versions.first { $0.target == item.target }) }
    }

    /// Targets that serve now (healthy).
    public var serving: Int { entries.filter { $0.state == TargetState.healthy.rawValue }.count }

    /// The versions running, the one put on a target most recently first; unknown last.
    public var groups: [Group] {
        var order: [String?] = []
        var latest: [String: Date] = [:]
        var members: [String?: [String]] = [:]
        for entry in entries {
            let version = entry.version?.version
            if members[version] == nil { order.append(version) }
            members[version, default: []].append(entry.target.id)
            if let recorded = entry.version, let version { latest[version] = max(latest[version] ?? recorded.at, recorded.at) }
        }
        return order.sorted { a, b in
            switch (a, b) {
            case (nil, _): return false
            case (_, nil): return true
            case let (a?, b?): return (latest[a] ?? .distantPast) > (latest[b] ?? .distantPast)
            }
        }.map { Group(version: $0, targets: members[$0] ?? []) }
    }

    /// More than one version (or some targets unknown) among the targets.
    public var isMixed: Bool { groups.count > 1 }

    /// `serving 2 of 3; mixed: v3 on demo-1, v2 on demo-2, demo-3` (or `; all on v2`).
    public var summary: String {
        var text = "serving \(serving) of \(entries.count)"
        let groups = self.groups
        if groups.count > 1 {
            text += "; mixed: " + groups.map { "\($0.version ?? "unknown") on \($0.targets.joined(separator: ", "))" }.joined(separator: ", ")
        } else if let only = groups.first {
            text += "; all on \(only.version ?? "unknown")"
        }
        return text
    }
}
