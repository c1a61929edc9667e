/// Time as the roll sees it: wall-clock `now` for records, `sleep` between polls.
/// Tests inject a manual clock, so no test sleeps for real.
public protocol RolloutClock: Sendable {
    var now: Date { get }
    /// Sleeps, or throws `CancellationError` when the task is cancelled.
    func sleep(for duration: Duration) async throws
}

public struct SystemClock: RolloutClock {
    public init() {}
    public var now: Date { Date() }
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}

extension Duration {
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    public static func seconds(_ value: Double) -> Duration {
        .milliseconds(Int64((value * 1000).rounded()))
    }

    /// `500ms`, `30s`, `10m`, `1h`, or `1m30s`: the form the config uses and errors print.
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

extension Date {
    public func adding(_ duration: Duration) -> Date { addingTimeInterval(duration.seconds) }
    public func since(_ earlier: Date) -> Duration { .seconds(timeIntervalSince(earlier)) }
}
