@testable import Configuration
@testable import HTTPAPI
@testable import WireFormat
import Foundation
import MicroHTTP
import HTTPTesting
@testable import RollgateServer

/// What a server's history says about its fleet, read through the API as any client would:
/// when each target was out of the load balancer, and whether two ever were at once.
struct FleetHistory {
    struct Interval: CustomStringConvertible {
        let target: String
        let from: String
        let to: String?   // nil: still out
        var description: String { "\(target) out \(from)...\(to ?? "now")" }
    }

    let runs: [JSONValue]

    /// Every run of the server, oldest first, with its steps.
    static func read(_ client: HTTPClient) async throws -> FleetHistory {
        var runs: [JSONValue] = []
        var cursor: String?
        repeat {
            let page = json(try await client.request("GET", "/api/v1/runs?limit=200" + (cursor.map { "&cursor=\($0)" } ?? "")))
            runs += page["runs"]?.array ?? []
            cursor = page["next_cursor"]?.string
        } while cursor != nil
        return FleetHistory(runs: runs.reversed())
    }

    /// Out from the first drain step that began (over-estimating: DeregisterTargets comes
    /// after it) to the restore step that succeeded (the load balancer said healthy).
    var outIntervals: [Interval] {
        let steps = runs.flatMap { $0["steps"]?.array ?? [] }
            .sorted { ($0["id"]?.int ?? 0) < ($1["id"]?.int ?? 0) }
        var open: [String: String] = [:]
        var intervals: [Interval] = []
        for step in steps {
            guard let target = step["target_id"]?.string, let phase = step["phase"]?.string,
                  let started = step["started_at"]?.string else { continue }
            if phase == "drain", open[target] == nil { open[target] = started }
            if phase == "restore", step["status"] == .string("succeeded"), let from = open[target] {
                intervals.append(Interval(target: target, from: from, to: step["finished_at"]?.string))
                open[target] = nil
            }
        }
        intervals += open.map { Interval(target: $0.key, from: $0.value, to: nil) }
        return intervals
    }

    /// Pairs of different targets out at the same moment (RFC 3339 UTC strings compare as times).
    var overlaps: [String] {
        let intervals = outIntervals
        var found: [String] = []
        for (i, a) in intervals.enumerated() {
            for b in intervals[(i + 1)...] where a.target != b.target {
                let aEnd = a.to ?? "9999", bEnd = b.to ?? "9999"
                if a.from < bEnd && b.from < aEnd { found.append("\(a) overlaps \(b)") }
            }
        }
        return found
    }

    /// A target whose deploy hook succeeded twice within one run (rolled twice).
    var targetsRolledTwice: [String] {
        runs.flatMap { run -> [String] in
            let restored = (run["steps"]?.array ?? []).filter { $0["phase"] == .string("deploy") && $0["status"] == .string("succeeded") }
                .compactMap { $0["target_id"]?.string }
            return Dictionary(grouping: restored, by: { $0 }).filter { $0.value.count > 1 }.map { "run \(run["id"]?.int ?? 0): \($0.key)" }
        }
    }
}
