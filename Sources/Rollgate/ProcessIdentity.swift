import Rollout
#if canImport(Glibc)
import Glibc
#endif

/// This process as a lease owner, and whether another owner of this host is still alive,
/// read from /proc: a pid is the same process only while its start time is the same.
public struct ProcessIdentity: LivenessProbe {
    public let host: String

    public init() {
        var buffer = [CChar](repeating: 0, count: 256)
        if gethostname(&buffer, buffer.count - 1) == 0 {
            host = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        } else {
            host = "localhost"
        }
    }

    /// host/pid/start of the running process.
    public var current: LeaseOwner {
        let pid = getpid()
        return LeaseOwner(host: host, pid: pid, start: ProcessIdentity.startTime(of: pid) ?? 0)
    }

    public func isGone(_ owner: LeaseOwner) -> Bool {
        guard owner.host == host else { return false }   // another host: its lease's expiry decides
        guard let start = ProcessIdentity.startTime(of: owner.pid) else { return true }
        return start != owner.start
    }

    /// Field 22 of /proc/PID/stat: when the process started, in clock ticks after boot.
    static func startTime(of pid: Int32) -> UInt64? {
        ProcStat.read(pid).flatMap { ProcStat.field(22, of: $0) }.flatMap { UInt64($0) }
    }
}
