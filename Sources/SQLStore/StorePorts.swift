import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Store: RunHistory {}

/// The store's async ports: every call runs on the store's own threads (`work`), never on
/// Swift's cooperative pool.
public struct StorePorts: HistoryReads, DeployRequests, EventOutbox {
    public let store: Store
    let work: BlockingWork

    public init(store: Store, work: BlockingWork) {
        self.store = store
        self.work = work
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any RunHistory) throws -> T) async throws -> T {
        let store = self.store
        return try await work.run { try body(store) }
    }

    private func on<T: Sendable>(_ body: @escaping @Sendable (Store) throws -> T) async throws -> T {
        let store = self.store
        return try await work.run { try body(store) }
    }

    // DeployRequests

    public func enqueue(service: String, version: String, reason: String?, requestedBy: String, idempotencyKey: String?,
                        kind: RunKind, waitForLock: Bool, rollbackFrom: String?, at now: Date) async throws -> Enqueued {
        try await on { try $0.enqueue(service: service, version: version, reason: reason, requestedBy: requestedBy,
                                      idempotencyKey: idempotencyKey, kind: kind, waitForLock: waitForLock,
                                      rollbackFrom: rollbackFrom, at: now) }
    }
    public func requestCancel(_ id: RunID, at now: Date) async throws -> Run? { try await on { try $0.requestCancel(id, at: now) } }
    public func requestPromote(_ id: RunID) async throws -> Bool { try await on { try $0.requestPromote(id) } }
    public func lock(service: String, reason: String, by: String, expiresAt: Date?, at now: Date) async throws -> ServiceLock {
        try await on { try $0.lock(service: service, reason: reason, by: by, expiresAt: expiresAt, at: now) }
    }
    public func unlock(service: String, at now: Date) async throws -> ServiceLock? { try await on { try $0.unlock(service: service, at: now) } }
    public func forget(service: String, targetID: String, by who: String, reason: String?, at now: Date) async throws -> LeftOutTarget? {
        try await on { try $0.forget(service: service, targetID: targetID, by: who, reason: reason, at: now) }
    }
    public func firstSight(of key: String, until expires: Date, at now: Date) async throws -> Bool {
        try await on { try $0.firstSight(of: key, until: expires, at: now) }
    }
    public func setReplyTargets(of run: RunID, replyURL: String?, githubDeployment: String?) async throws {
        try await on { try $0.setReplyTargets(of: run, replyURL: replyURL, githubDeployment: githubDeployment) }
    }

    // EventOutbox

    public func cursor(of destination: String) async throws -> Int64? { try await on { try $0.cursor(of: destination) } }
    public func lastEventSeq() async throws -> Int64 { try await on { try $0.lastEventSeq() } }
    public func events(after seq: Int64, limit: Int) async throws -> [RunEventRecord] { try await on { try $0.events(after: seq, limit: limit) } }
    public func queueDeliveries(to destination: String, _ events: [RunEventRecord], upTo: Int64, at now: Date) async throws {
        try await on { try $0.queueDeliveries(to: destination, events, upTo: upTo, at: now) }
    }
    public func destinationsWithPending() async throws -> [String] { try await on { try $0.destinationsWithPending() } }
    public func nextDelivery(to destination: String, at now: Date) async throws -> (event: RunEventRecord, attempts: Int)? {
        try await on { try $0.nextDelivery(to: destination, at: now).map { Pair($0.event, $0.attempts) } }.map { ($0.first, $0.second) }
    }
    public func delivered(to destination: String, seq: Int64, at now: Date) async throws {
        try await on { try $0.delivered(to: destination, seq: seq, at: now) }
    }
    public func deliveryFailed(to destination: String, seq: Int64, error: String, retryAt: Date?) async throws {
        try await on { try $0.deliveryFailed(to: destination, seq: seq, error: error, retryAt: retryAt) }
    }
    public func deliveries(of run: RunID) async throws -> [DeliveryRecord] { try await on { try $0.deliveries(of: run) } }
    public func replyTargets(of run: RunID) async throws -> (replyURL: String?, githubDeployment: String?) {
        let pair = try await on { store -> Pair<String?, String?> in
            let targets = try store.replyTargets(of: run)
            return Pair(targets.replyURL, targets.githubDeployment)
        }
        return (pair.first, pair.second)
    }
    public func run(_ id: RunID) async throws -> Run? { try await on { try $0.run(id) } }
}

/// Two values across a thread hop (tuples are not Sendable).
struct Pair<A: Sendable, B: Sendable>: Sendable {
    let first: A
    let second: B
    init(_ first: A, _ second: B) {
        self.first = first
        self.second = second
    }
}
