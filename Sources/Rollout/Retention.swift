/// What the pruner keeps: the newest `keepRuns` runs per service, log lines for `keepLogs`.
/// A service's newest run and unfinished runs are always kept.
public struct Retention: Sendable, Equatable {
    public var keepRuns: Int?
    public var keepLogs: Duration?

    public init(keepRuns: Int? = nil, keepLogs: Duration? = nil) {
        self.keepRuns = keepRuns
        self.keepLogs = keepLogs
    }
}
