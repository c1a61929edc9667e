/// Who holds a run (or the database): host, process id and the process's start time, so a
/// recycled pid is never mistaken for the holder. Written as `host/pid/start`.
public struct LeaseOwner: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var pid: Int32
    /// The process's start time in the host's own units (Linux: clock ticks since boot).
    public var start: UInt64

    public init(host: String, pid: Int32, start: UInt64) {
        self.host = host
        self.pid = pid
        self.start = start
    }

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, let pid = Int32(parts[parts.count - 2]), let start = UInt64(parts[parts.count - 1]) else { return nil }
        self.init(host: parts.dropLast(2).joined(separator: "/"), pid: pid, start: start)
    }

    public var text: String { "\(host)/\(pid)/\(start)" }
    public var description: String { "process \(pid) on \(host)" }
}

/// How long a lease lasts without renewal, and how often it is renewed.
public struct LeaseTerms: Sendable, Equatable {
    public var duration: Duration
    public var renewEvery: Duration

    public init(duration: Duration = .seconds(15), renewEvery: Duration = .seconds(3)) {
        self.duration = duration
        self.renewEvery = renewEvery
    }
}

/// Says whether a lease owner is a process that no longer exists. Only the owner's own
/// host can tell; for other hosts it answers false and the lease's expiry decides.
public protocol LivenessProbe: Sendable {
    func isGone(_ owner: LeaseOwner) -> Bool
}

/// The run's lease was taken by another owner: this worker must not act on it any more.
public struct LeaseLost: Error, CustomStringConvertible {
    public let run: RunID
    public init(run: RunID) { self.run = run }
    public var description: String { "the lease on run \(run) is held by another process" }
}
