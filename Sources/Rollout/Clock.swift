#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Time as the roll sees it: wall-clock `now` for records, `sleep` between polls.
/// Tests inject a manual clock, so no test sleeps for real.
public protocol RolloutClock: Sendable {
    var now: Date { get }
    /// Time since an arbitrary start that never steps back (the wall clock can): what lease
    /// deadlines and renewal intervals are measured on. It goes on while the process is
    /// stopped (SIGSTOP), so a process that wakes up knows at once that its deadline passed.
    var uptime: Duration { get }
    /// Sleeps, or throws `CancellationError` when the task is cancelled.
    func sleep(for duration: Duration) async throws
}

public struct SystemClock: RolloutClock {
    public init() {}
    public var now: Date { Date() }
    public var uptime: Duration { ContinuousClock.now - SystemClock.origin }
    private static let origin = ContinuousClock.now
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}

/// A tick every `interval` on a clock, the first at once or one interval in, until the
/// task is cancelled: what every periodic part of rollgate waits on (the clock's sleep is
/// here once, not in a loop of each).
public struct Ticks: AsyncSequence, Sendable {
    public typealias Element = Void
    let clock: any RolloutClock
    let interval: Duration
    let atOnce: Bool

    public struct AsyncIterator: AsyncIteratorProtocol {
        let clock: any RolloutClock
        let interval: Duration
        var first: Bool

        public mutating func next() async -> Void? {
            if first {
                first = false
                return Task.isCancelled ? nil : ()
            }
            do { try await clock.sleep(for: interval) } catch { return nil }
            return ()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(clock: clock, interval: interval, first: atOnce) }
}

extension RolloutClock {
    /// Ticks every `interval`; the first at once when `atOnce`, else one interval in.
    public func ticks(every interval: Duration, atOnce: Bool = false) -> Ticks {
        Ticks(clock: self, interval: interval, atOnce: atOnce)
    }
}

extension Duration {
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    public static func seconds(_ value: Double) -> Duration {
        .milliseconds(Int64((value * 1000).rounded()))
    }

    /// `500ms`, `30s`, `10m`, `1h`, or `1m30s`: the form the config uses and errors print.
    /// How long, as a person reads it (pages, the CLI): `304 ms`, `1.5 s`, `2 min 5 s`,
    /// `1 h 3 min`. Not for config values: `humanText` writes those exactly.
    public var readable: String {
        let ms = Int64((seconds * 1000).rounded())
        if ms < 1000 { return "\(ms) ms" }
        if ms < 10_000 { return "\(ms / 1000).\(ms % 1000 / 100) s" }
        let s = ms / 1000
        if s < 60 { return "\(s) s" }
        if s < 3600 { return s % 60 == 0 ? "\(s / 60) min" : "\(s / 60) min \(s % 60) s" }
        return "\(s / 3600) h \(s % 3600 / 60) min"
    }

    public var humanText: String {
        let ms = Int64((seconds * 1000).rounded())
        if ms % 1000 != 0 { return "\(ms)ms" }
        let s = ms / 1000
        if s >= 3600 && s % 3600 == 0 { return "\(s / 3600)h" }
        if s >= 60 && s % 60 == 0 { return "\(s / 60)m" }
        if s >= 60 { return "\(s / 60)m\(s % 60)s" }
        return "\(s)s"
    }
}

/// A moment as a UTC calendar reads it; what RFC 3339 and SigV4 timestamps are written from.
public struct UTCTime: Sendable, Equatable {
    public var year, month, day, hour, minute, second, millisecond: Int64

    /// Milliseconds rounded as the store keeps them.
    public init(_ date: Date) {
        self.init(milliseconds: date.milliseconds)
    }

    public init(milliseconds ms: Int64) {
        let (days, rest) = UTCTime.split(milliseconds: ms)
        (year, month, day) = UTCTime.civil(days: days)
        (hour, minute, second, millisecond) = UTCTime.clock(milliseconds: rest)
    }

    /// The time of day of the milliseconds into a day.
    @inlinable
    public static func clock(milliseconds rest: Int64) -> (hour: Int64, minute: Int64, second: Int64, millisecond: Int64) {
        (rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000)
    }

    /// Whole days since 1970-01-01 and the milliseconds into the last one (never negative).
    public static func split(milliseconds ms: Int64) -> (days: Int64, rest: Int64) {
        var days = ms / 86_400_000
        var rest = ms - days * 86_400_000
        if rest < 0 { rest += 86_400_000; days -= 1 }
        return (days, rest)
    }

    /// The calendar date of a day since 1970-01-01: civil from days (Howard Hinnant's algorithm).
    public static func civil(days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

extension Date {
    /// Whole milliseconds since 1970, rounded: what the store keeps and timestamps print.
    public var milliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }
    public init(milliseconds: Int64) { self.init(timeIntervalSince1970: Double(milliseconds) / 1000) }

    public func adding(_ duration: Duration) -> Date { addingTimeInterval(duration.seconds) }
    public func since(_ earlier: Date) -> Duration { .seconds(timeIntervalSince(earlier)) }
}
