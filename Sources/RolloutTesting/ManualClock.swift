import Rollout
import Synchronization

/// Virtual time: `sleep` returns at once after moving `now` forward by the duration, and
/// every sleep is recorded, so a test reads the exact poll schedule without waiting.
public final class ManualClock: RolloutClock {
    private let state: Mutex<(now: Date, sleeps: [Duration])>
    /// Called after each sleep with the new time (to change the world mid-wait).
    private let onSleep: Mutex<(@Sendable (Date) -> Void)?> = Mutex(nil)

    public init(start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        state = Mutex((start, []))
    }

    public var now: Date { state.withLock { $0.now } }
    public var sleeps: [Duration] { state.withLock { $0.sleeps } }

    public func advance(by duration: Duration) {
        state.withLock { $0.now = $0.now.adding(duration) }
    }

    public func whenSleeping(_ body: @escaping @Sendable (Date) -> Void) {
        onSleep.withLock { $0 = body }
    }

    public func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        let now = state.withLock { state -> Date in
            state.sleeps.append(duration)
            state.now = state.now.adding(duration)
            return state.now
        }
        onSleep.withLock { $0 }?(now)
        await Task.yield()
        try Task.checkCancellation()
    }
}
