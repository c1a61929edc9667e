import Configuration
import Rollout
#if canImport(Glibc)
import Glibc
#endif

/// This process as a lease owner, and whether another owner is still alive, read from /proc
/// only when that owner's pid is counted in this process's own pid namespace of this boot
/// (two containers with the host's hostname read different /proc): a pid is the same process
/// only while its start time is the same.
public struct ProcessIdentity: LivenessProbe {
    public let host: String
    /// This process's random id, boot id and pid namespace (see `LeaseOwner`).
    public let instance: String
    public let boot: String
    public let pidNamespace: String

    public init() {
        var buffer = [CChar](repeating: 0, count: 256)
        if gethostname(&buffer, buffer.count - 1) == 0 {
            host = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        } else {
            host = "localhost"
        }
        instance = (0..<4).map { _ in String(UInt32.random(in: .min ... .max), radix: 16) }.joined()
        boot = ProcessIdentity.text(of: "/proc/sys/kernel/random/boot_id")
        var link = [CChar](repeating: 0, count: 128)
        let length = readlink("/proc/self/ns/pid", &link, link.count - 1)
        pidNamespace = length > 0 ? String(decoding: link[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    }

    /// host/pid/start#instance#boot#pidns of the running process.
    public var current: LeaseOwner {
        let pid = getpid()
        return LeaseOwner(host: host, pid: pid, start: ProcessIdentity.startTime(of: pid) ?? 0,
                          instance: instance, boot: boot, pidNamespace: pidNamespace)
    }

    public func isGone(_ owner: LeaseOwner) -> Bool {
        // Another host, another boot or another pid namespace (or an owner written before
        // these were recorded): /proc here says nothing about it; its lease's expiry decides.
        guard current.sharesProcessTable(with: owner) else { return false }
        guard let start = ProcessIdentity.startTime(of: owner.pid) else { return true }
        return start != owner.start
    }

    static func text(of path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 128)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Field 22 of /proc/PID/stat: when the process started, in clock ticks after boot.
    static func startTime(of pid: Int32) -> UInt64? {
        ProcStat.read(pid).flatMap { ProcStat.field(22, of: $0) }.flatMap { UInt64($0) }
    }
}
