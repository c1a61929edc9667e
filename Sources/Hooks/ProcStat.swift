import Configuration
import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `/proc/PID/stat`, read past the command name (field 2), which may hold spaces and
/// parentheses: what the hook runner (process groups) and leases (start times) both need.
enum ProcStat {
    static func read(_ pid: Int32) -> [UInt8]? {
        FileManager.default.contents(atPath: "/proc/\(pid)/stat").map { [UInt8]($0) }
    }

    /// Field `number` as proc(5) counts them (from 1; 3 and up, after the command name).
    static func field(_ number: Int, of stat: [UInt8]) -> String? {
        guard number >= 3, let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > number - 3 else { return nil }
        return String(decoding: fields[number - 3], as: UTF8.self)
    }
}
