/// What the pruner keeps: the newest `keepRuns` runs per service, log lines for `keepLogs`.
/// A service's newest run and unfinished runs are always kept.
public struct Retention: Sendable, Equatable {
    public var keepRuns: Int?
    public var keepLogs: Duration?

    public init(keepRuns: Int? = nil, keepLogs: Duration? = nil) {
        self.keepRuns = keepRuns
        self.keepLogs = keepLogs
    }

    /// What a config without `retention:` keeps: 2,000 runs per service, logs for 180 days
    /// (a database of about 15 MB per service at 50 log lines a run; bench/history.sh).
    public static let `default` = Retention(keepRuns: 2000, keepLogs: .seconds(180 * 86_400))
}
