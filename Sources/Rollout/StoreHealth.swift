import Logging
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Whether the database takes writes, as the last write found. Every retried write reports
/// here; `/healthz` and `/metrics` read it.
public final class StoreHealth: Sendable {
    public struct Failure: Sendable, Equatable {
        public var message: String
        public var since: Date
    }

    private let state = Mutex<(failure: Failure?, failedWrites: Int)>((nil, 0))

    public init() {}

    public func succeeded() {
        state.withLock { $0.failure = nil }
    }

    /// `/healthz` shows the message: a store's error says what went wrong, not its statement.
    public func failed(_ error: Error, at now: Date) {
        let message = (error as? any StoreFault)?.summary ?? "\(error)"
        state.withLock { state in
            state.failedWrites += 1
            if state.failure == nil { state.failure = Failure(message: message, since: now) }
            else { state.failure?.message = message }
        }
    }

    /// Nil while writes succeed.
    public var failure: Failure? { state.withLock { $0.failure } }
    /// Writes that failed and were retried, since start.
    public var failedWrites: Int { state.withLock { $0.failedWrites } }
}

/// A store error that says whether the same write can pass later (the database busy, locked,
/// full, read-only, an I/O error) or never will (a constraint the schema holds, a misuse):
/// the second is a bug, and retrying it would only hide it.
public protocol StoreFault: Error {
    var mayPassLater: Bool { get }
    /// What a client may read of it: the engine's words for what went wrong, never the
    /// statement or its values (the server's log has those).
    var summary: String { get }
    /// A UNIQUE index said no (another process got there first).
    var isUniqueViolation: Bool { get }
}

/// A write the store refused for good: a bug, not a database outage. It stops the roll (the
/// run fails with it, its target recorded as left out when it was out) instead of retrying.
public struct StoreRefusedWrite: Error, CustomStringConvertible {
    public let action: String
    public let underlying: Error
    public var description: String { "the database refused \(action) for good (a bug, not an outage): \(underlying)" }
}

/// Retries a database write with a growing, capped backoff until it succeeds, reporting each
/// failure to `health` and the first of each write to `logger`: a database outage is never the
/// reason a roll fails or a target is left out. Only what can pass later is retried: a write
/// the store refuses for good (`StoreFault.mayPassLater == false`, a CHECK or UNIQUE that says
/// no) throws `StoreRefusedWrite` at once. Only cancellation (shutdown) ends the wait.
public struct DurableWrite: Sendable {
    public let clock: any RolloutClock
    public let health: StoreHealth
    public let logger: Logger?
    public var first: Duration = .milliseconds(100)
    public var cap: Duration = .seconds(5)
    /// Where a write that may wait on the database's lock runs (`performBlocking`): never
    /// Swift's cooperative pool. Nil runs it where it is called (the memory fake in tests).
    public var work: BlockingWork?

    public init(clock: any RolloutClock, health: StoreHealth, logger: Logger? = nil, work: BlockingWork? = nil) {
        self.clock = clock
        self.health = health
        self.logger = logger
        self.work = work
    }

    /// `perform`, with each attempt run on `work`'s threads (where called without one).
    public func performBlocking<T: Sendable>(_ what: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        let work = self.work
        return try await perform(what, attempt: { try await work.run(body) })
    }

    public func perform<T>(_ what: String, isolation: isolated (any Actor)? = #isolation,
                           _ body: () throws -> T) async throws -> T {
        try await perform(what, attempt: { try body() })
    }

    /// `perform`, each attempt awaited (a port that makes its call on the store's threads).
    public func perform<T>(_ what: String, isolation: isolated (any Actor)? = #isolation,
                           attempt body: () async throws -> T) async throws -> T {
        var delay = first
        var reported = false
        while true {
            do {
                let result = try await body()
                health.succeeded()
                return result
            } catch let lost as LeaseLost {
                throw lost
            } catch let fault as StoreFault where !fault.mayPassLater {
                logger?.error("the database refused a write for good; not retrying", metadata: ["action": "\(what)", "error": "\(fault)"])
                throw StoreRefusedWrite(action: what, underlying: fault)
            } catch {
                health.failed(error, at: clock.now)
                if !reported {
                    reported = true
                    logger?.error("cannot write to the database; retrying until it can", metadata: ["action": "\(what)", "error": "\(error)"])
                }
                try await clock.sleep(for: delay)
                delay = min(delay * 2, cap)
            }
        }
    }
}
