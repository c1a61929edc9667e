import Rollout
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Virtual time: `sleep` returns at once after moving `now` forward by the duration, and
/// every sleep is recorded, so a test reads the exact poll schedule without waiting.
public final class ManualClock: RolloutClock {
    private let state: Mutex<(now: Date, sleeps: [Duration], uptime: Duration)>
    /// Called after each sleep with the new time (to change the world mid-wait).
    private let onSleep: Mutex<(@Sendable (Date) -> Void)?> = Mutex(nil)

    public init(start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        state = Mutex((start, [], .zero))
    }

    public var now: Date { state.withLock { $0.now } }
    public var sleeps: [Duration] { state.withLock { $0.sleeps } }
    public var uptime: Duration { state.withLock { $0.uptime } }

    /// Time passes: both the wall clock and uptime move forward.
    public func advance(by duration: Duration) {
        state.withLock { $0.now = $0.now.adding(duration); $0.uptime += duration }
    }

    /// Time passes until `date` (nothing when it is not later than now).
    public func advance(to date: Date) {
        state.withLock { state in
            guard date > state.now else { return }
            state.uptime += date.since(state.now)
            state.now = date
        }
    }

    /// The wall clock is set (NTP, an operator): `now` jumps, uptime does not move.
    public func setWallClock(by step: Duration) {
        state.withLock { $0.now = $0.now.adding(step) }
    }

    public func whenSleeping(_ body: @escaping @Sendable (Date) -> Void) {
        onSleep.withLock { $0 = body }
    }

    public func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        let now = state.withLock { state -> Date in
            state.sleeps.append(duration)
            state.now = state.now.adding(duration)
            state.uptime += duration
            return state.now
        }
        onSleep.withLock { $0 }?(now)
        await Task.yield()
        try Task.checkCancellation()
    }
}
