#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The store as the API, the page, /metrics and the notifier use it: three ports, whatever
// the engine (SQLite in a file, PostgreSQL shared by replicas). The roll and the dispatcher
// use `RunJournal` and `RunQueue` (RunStore.swift).

/// The history as it is read: runs, their logs and events, services, deliveries, what the
/// forecast needs. Synchronous, for callers on threads that may block: the HTTP server's own
/// (a run read there is a point read answered without a hop, which keeps the API's read path
/// near a C server's speed, BENCHMARKS.md) and the store's. Code on Swift's cooperative pool
/// reads through `HistoryReads` instead.
public protocol RunHistory: Sendable {
    /// This replica's name (`name:`, or the host name).
    var replica: String { get }
    /// How long the oldest write in progress has waited for the database, if one waits.
    var longestWriteWait: Duration? { get }
    func run(_ id: RunID) throws -> Run?
    func run(idempotencyKey key: String) throws -> Run?
    func runs(_ filter: RunFilter) throws -> [Run]
    func logs(run: RunID, after: Int64, limit: Int) throws -> [LogLine]
    /// The seq before the run's last `count` lines (where a follow starts).
    func logSeq(run: RunID, beforeLast count: Int) throws -> Int64
    func events(after seq: Int64, limit: Int) throws -> [RunEventRecord]
    func lastEventSeq() throws -> Int64
    func serviceSummary(_ service: String) throws -> ServiceSummary
    /// The version rollgate last put on each target of the service it deployed.
    func targetVersions(service: String) throws -> [TargetVersion]
    func leftOut(service: String) throws -> [LeftOutTarget]
    func leftOutCounts() throws -> [String: Int]
    /// The service's lock while it holds at `now`.
    func lock(service: String, at now: Date) throws -> ServiceLock?
    func deliveries(of run: RunID) throws -> [DeliveryRecord]
    func pendingDeliveryCounts() throws -> [String: Int]
    func activeRunCounts() throws -> [(service: String, status: RunStatus, count: Int)]
    func phaseTimes(service: String, runs: Int) throws -> [Phase: PhaseTimes]
    func drainIdleShares(service: String, runs: Int) throws -> [Double]
    func previousGoodVersion(service: String, before run: RunID, otherThan version: String) throws -> String?
    /// The run's frozen plan (its targets, in order); empty until it started.
    func plan(of run: RunID) throws -> [PlannedTarget]
}

/// The history read from Swift's cooperative pool: each read runs on the store's own
/// threads, so no database call (a lock wait, a network round trip) holds a pool thread.
public protocol HistoryReads: Sendable {
    func read<T: Sendable>(_ body: @escaping @Sendable (any RunHistory) throws -> T) async throws -> T
}

/// What people ask of the queue through the API, webhooks and Slack: each write waits on the
/// store's own threads (a write lock, a failover) and is retried by nobody here: its error
/// is the client's answer.
public protocol DeployRequests: Sendable {
    /// Queues a run; a queued deploy of the same service is superseded by it, at once.
    func enqueue(service: String, version: String, reason: String?, requestedBy: String, idempotencyKey: String?,
                 kind: RunKind, waitForLock: Bool, rollbackFrom: String?, at now: Date) async throws -> Enqueued
    /// Cancels a queued run at once; asks a running one to stop at its next safe point.
    func requestCancel(_ id: RunID, at now: Date) async throws -> Run?
    /// Ends a running run's canary bake early; false unless it is running.
    func requestPromote(_ id: RunID) async throws -> Bool
    func lock(service: String, reason: String, by: String, expiresAt: Date?, at now: Date) async throws -> ServiceLock
    func unlock(service: String, at now: Date) async throws -> ServiceLock?
    /// Drops a left-out target for good (refused while a run of the service runs), recording
    /// who and why as an event and a line in the log of the run that left it out.
    func forget(service: String, targetID: String, by who: String, reason: String?, at now: Date) async throws -> LeftOutTarget?
    /// True the first time `key` is seen before `expires` (a signed request's replay is refused).
    func firstSight(of key: String, until expires: Date, at now: Date) async throws -> Bool
    /// Where the run's notifications also go: a Slack `response_url`, a GitHub deployment.
    func setReplyTargets(of run: RunID, replyURL: String?, githubDeployment: String?) async throws
}

/// The event log's outbox as the notifier works it: each destination has a cursor through
/// the log and a delivery per event it is to receive, sent oldest first.
public protocol EventOutbox: Sendable {
    func cursor(of destination: String) async throws -> Int64?
    func lastEventSeq() async throws -> Int64
    func events(after seq: Int64, limit: Int) async throws -> [RunEventRecord]
    /// Queues `events` for `destination` and moves its cursor to `upTo`, in one write.
    func queueDeliveries(to destination: String, _ events: [RunEventRecord], upTo: Int64, at now: Date) async throws
    func destinationsWithPending() async throws -> [String]
    func nextDelivery(to destination: String, at now: Date) async throws -> (event: RunEventRecord, attempts: Int)?
    func delivered(to destination: String, seq: Int64, at now: Date) async throws
    /// A failed attempt: retried at `retryAt`, or given up when nil.
    func deliveryFailed(to destination: String, seq: Int64, error: String, retryAt: Date?) async throws
    func deliveries(of run: RunID) async throws -> [DeliveryRecord]
    func replyTargets(of run: RunID) async throws -> (replyURL: String?, githubDeployment: String?)
    func run(_ id: RunID) async throws -> Run?
}

/// Why a left-out target cannot be forgotten now: a run of its service is rolling.
public struct ServiceRolling: Error, CustomStringConvertible {
    public let run: RunID
    public init(run: RunID) { self.run = run }
    public var description: String { "run \(run) is rolling the service" }
}

/// What another replica (or this one) committed that open streams may want.
public enum StoreChange: Sendable, Equatable {
    /// New lines of a run's log.
    case log(run: Int64)
    /// New events (the page's and `/api/v1/events`' stream).
    case events
    /// Anything may have changed: the feed was down meanwhile (every tail reads again).
    case everything
}
