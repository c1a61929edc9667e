#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a queued deploy became.
public enum Enqueued: Sendable {
    case created(Run, superseded: [RunID])
    /// The same Idempotency-Key asked for the same deploy before: that run.
    case replayed(Run)
    /// The Idempotency-Key was used for a different deploy.
    case keyConflict(Run)
}

/// Which runs a listing asks for, newest first.
public struct RunFilter: Sendable {
    public var service: String?
    public var status: RunStatus?
    public var limit: Int
    /// Cursor: only runs with a smaller id.
    public var before: RunID?

    public init(service: String? = nil, status: RunStatus? = nil, limit: Int = 50, before: RunID? = nil) {
        self.service = service
        self.status = status
        self.limit = limit
        self.before = before
    }
}

/// A service as the API and the page show it.
public struct ServiceSummary: Sendable {
    public var name: String
    public var lastGoodVersion: String?
    public var lastGoodRunID: RunID?
    public var running: Run?
    public var queued: [RunID]
    /// Targets rollgate took out and has not put back.
    public var leftOut: [LeftOutTarget]
    /// The service's lock, expired or not (`holds(at:)` tells).
    public var lock: ServiceLock?
    /// Its target groups whose health check rollgate has changed and not put back yet.
    public var changedHealthChecks: [ChangedHealthCheck] = []
    /// The version rollgate last put on each target it deployed (targets not listed: unknown).
    public var versions: [TargetVersion] = []
    /// How many targets the running run's frozen plan holds (nil: none running, or not frozen yet).
    public var runningPlanned: Int?

    public init(name: String, lastGoodVersion: String? = nil, lastGoodRunID: RunID? = nil, running: Run? = nil, queued: [RunID], leftOut: [LeftOutTarget], lock: ServiceLock? = nil, changedHealthChecks: [ChangedHealthCheck] = [], versions: [TargetVersion] = []) {
        self.name = name
        self.lastGoodVersion = lastGoodVersion
        self.lastGoodRunID = lastGoodRunID
        self.running = running
        self.queued = queued
        self.leftOut = leftOut
        self.lock = lock
        self.changedHealthChecks = changedHealthChecks
        self.versions = versions
    }
}

/// The version rollgate last put on a target (a deploy's, or what a rollback put back), when,
/// and by which run.
public struct TargetVersion: Sendable, Equatable {
    public var target: Target
    public var version: String
    public var runID: RunID
    public var at: Date

    public init(target: Target, version: String, runID: RunID, at: Date) {
        self.target = target
        self.version = version
        self.runID = runID
        self.at = at
    }
}
