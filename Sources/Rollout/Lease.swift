import Synchronization

/// Who holds a run (or the database): host, process id and the process's start time (a
/// recycled pid is never mistaken for the holder), plus a random id of this process's own
/// (two containers can share a host name, a pid and a start time, never this id), the
/// machine's boot id and the pid namespace the pid is counted in (a pid means something only
/// to a reader in the same namespace of the same boot). Written as
/// `host/pid/start#instance#boot#pidns`; the older `host/pid/start` still reads.
public struct LeaseOwner: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var pid: Int32
    /// The process's start time in the host's own units (Linux: clock ticks since boot).
    public var start: UInt64
    /// Random, made once per process: what tells two processes apart when all else is alike.
    public var instance: String
    /// `/proc/sys/kernel/random/boot_id`; empty when unknown.
    public var boot: String
    /// `/proc/self/ns/pid` (`pid:[4026531836]`); empty when unknown.
    public var pidNamespace: String

    public init(host: String, pid: Int32, start: UInt64, instance: String = "", boot: String = "", pidNamespace: String = "") {
        self.host = host
        self.pid = pid
        self.start = start
        self.instance = instance
        self.boot = boot
        self.pidNamespace = pidNamespace
    }

    public init?(_ text: String) {
        let fields = text.split(separator: "#", omittingEmptySubsequences: false).map(String.init)
        let parts = fields[0].split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, let pid = Int32(parts[parts.count - 2]), let start = UInt64(parts[parts.count - 1]) else { return nil }
        self.init(host: parts.dropLast(2).joined(separator: "/"), pid: pid, start: start,
                  instance: fields.count > 1 ? fields[1] : "", boot: fields.count > 2 ? fields[2] : "",
                  pidNamespace: fields.count > 3 ? fields[3] : "")
    }

    public var text: String {
        let base = "\(host)/\(pid)/\(start)"
        return instance.isEmpty && boot.isEmpty && pidNamespace.isEmpty ? base : "\(base)#\(instance)#\(boot)#\(pidNamespace)"
    }
    public var description: String { "process \(pid) on \(host)" }

    /// Whether `other`'s pid can be looked up here: the same host, the same boot and the same
    /// pid namespace, each known. Otherwise only its lease's expiry frees what it holds.
    public func sharesProcessTable(with other: LeaseOwner) -> Bool {
        host == other.host && !boot.isEmpty && boot == other.boot && !pidNamespace.isEmpty && pidNamespace == other.pidNamespace
    }
}

/// One holding of one run: who holds it and the epoch of that holding. Every claim and every
/// takeover increments the run's epoch, so a holding is never mistaken for a later one, even
/// by the same owner; each write of the run names the holding it is made under and is refused
/// (`LeaseLost`) unless the run is still held by exactly that one.
public struct RunLease: Sendable, Hashable, CustomStringConvertible {
    public var owner: LeaseOwner
    public var epoch: Int64

    public init(owner: LeaseOwner, epoch: Int64) {
        self.owner = owner
        self.epoch = epoch
    }

    public var description: String { "\(owner), epoch \(epoch)" }
}

/// How long a lease lasts without renewal, and how often it is renewed.
public struct LeaseTerms: Sendable, Equatable {
    public var duration: Duration
    public var renewEvery: Duration

    public init(duration: Duration = .seconds(15), renewEvery: Duration = .seconds(3)) {
        self.duration = duration
        self.renewEvery = renewEvery
    }

    /// `lease` long, renewed every fifth of it.
    public init(lease: Duration) {
        self.init(duration: lease, renewEvery: lease / 5)
    }

    /// How long after asking for a renewal that succeeded a holder may go on acting: two
    /// thirds of the lease, so a holder that can no longer renew (the database gone, the
    /// process stopped) stops a third of the lease before anyone else may take over.
    public var actingWindow: Duration { duration * 2 / 3 }
}

/// A holder's own, local view of one lease: until when (on the monotonic clock) it may act,
/// and whether it learnt that the lease is gone. Renewing moves the deadline to the moment
/// the renewal was asked plus `actingWindow`; past it, or once lost, the holder starts no
/// hook and makes no load-balancer change, and its running hooks are stopped at once, even
/// when the database never answers again. Rolls find theirs in `LeaseGuard.current`.
public final class LeaseGuard: Sendable {
    @TaskLocal public static var current: LeaseGuard?

    public let terms: LeaseTerms
    private let clock: any RolloutClock
    private let state: Mutex<(deadline: Duration, lost: Bool)>

    /// `askedAt`: the clock's uptime read before the claim or renewal was asked for.
    public init(terms: LeaseTerms, clock: any RolloutClock, askedAt: Duration) {
        self.terms = terms
        self.clock = clock
        state = Mutex((askedAt + terms.actingWindow, false))
    }

    /// A renewal asked at `askedAt` succeeded.
    public func renewed(askedAt: Duration) {
        state.withLock { state in state.deadline = max(state.deadline, askedAt + terms.actingWindow) }
    }

    /// Someone else holds it now (a write was refused): for good.
    public func lose() { state.withLock { $0.lost = true } }

    public var isLost: Bool { state.withLock { $0.lost } }

    /// Whether acting is still allowed: not lost and the deadline not passed.
    public var mayAct: Bool {
        let (deadline, lost) = state.withLock { ($0.deadline, $0.lost) }
        return !lost && clock.uptime < deadline
    }

    /// Why acting is not allowed, or nil while it is.
    public var refusal: String? {
        let (deadline, lost) = state.withLock { ($0.deadline, $0.lost) }
        if lost { return "another process holds the lease now" }
        let uptime = clock.uptime
        if uptime >= deadline {
            return "the lease was last renewed \((uptime - deadline + terms.actingWindow).humanText) ago (may act for \(terms.actingWindow.humanText) after a renewal)"
        }
        return nil
    }

    /// Throws `LeaseLost` once acting is no longer allowed; called right before a hook starts
    /// and before each load-balancer change.
    public func check(run: RunID) throws {
        if !mayAct { lose(); throw LeaseLost(run: run) }
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
