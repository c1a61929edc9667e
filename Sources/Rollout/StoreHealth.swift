import Logging
import Synchronization

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

    public func failed(_ error: Error, at now: Date) {
        state.withLock { state in
            state.failedWrites += 1
            if state.failure == nil { state.failure = Failure(message: "\(error)", since: now) }
            else { state.failure?.message = "\(error)" }
        }
    }

    /// Nil while writes succeed.
    public var failure: Failure? { state.withLock { $0.failure } }
    /// Writes that failed and were retried, since start.
    public var failedWrites: Int { state.withLock { $0.failedWrites } }
}

/// Retries a database write with a growing, capped backoff until it succeeds, reporting each
/// failure to `health` and the first of each write to `logger`: the database is never the
/// reason a roll fails or a target is left out. Only cancellation (shutdown) ends the wait.
public struct DurableWrite: Sendable {
    public let clock: any RolloutClock
    public let health: StoreHealth
    public let logger: Logger?
    public var first: Duration = .milliseconds(100)
    public var cap: Duration = .seconds(5)

    public init(clock: any RolloutClock, health: StoreHealth, logger: Logger? = nil) {
        self.clock = clock
        self.health = health
        self.logger = logger
    }

    public func perform<T>(_ what: String, isolation: isolated (any Actor)? = #isolation,
                           _ body: () throws -> T) async throws -> T {
        var delay = first
        var reported = false
        while true {
            do {
                let result = try body()
                health.succeeded()
                return result
            } catch let lost as LeaseLost {
                throw lost
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
