import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A run as a picture, drawn on the server as inline SVG (no chart library, no script): one
/// lane per target with its steps (prepare, drain, deploy, verify, health wait) side by side
/// in time, a red bar under each lane while the target was out of service, and above them the
/// service's capacity over the run (how many of the run's targets were in service).
/// Every span carries `data-from`/`data-until` (milliseconds from the run's first step), so
/// tests and tools read the same picture people see.
struct RunTimeline {
    static let width = 800.0
    static let labels = 110.0
    static let plot = width - labels - 10
    static let capacityHeight = 36.0
    static let lane = 24.0

    let run: Run
    let now: Date

    /// Nil before the run has a step.
    var svg: String? {
        guard let first = run.steps.map(\.startedAt).min() else { return nil }
        let end = max(run.steps.map { $0.finishedAt ?? now }.max() ?? first, run.finishedAt ?? first, first.addingTimeInterval(0.001))
        let span = end.timeIntervalSince(first)
        func x(_ date: Date) -> Double { RunTimeline.labels + RunTimeline.plot * min(1, max(0, date.timeIntervalSince(first) / span)) }
        func ms(_ date: Date) -> Int { Int((date.timeIntervalSince(first) * 1000).rounded()) }
        func number(_ value: Double) -> String { "\((value * 10).rounded() / 10)" }

        let lanes = run.latestStepPerTarget.map(\.targetID)
        let top = RunTimeline.capacityHeight + 18
        let height = top + Double(lanes.count) * RunTimeline.lane + 22
        var svg = "<svg id=\"timeline\" class=\"timeline\" viewBox=\"0 0 \(Int(RunTimeline.width)) \(Int(height))\" role=\"img\" aria-label=\"timeline of run \(run.id): one lane per target, capacity above\" xmlns=\"http://www.w3.org/2000/svg\">\n"

        // Capacity: all the run's targets serve, less those out at each moment.
        let outages = run.outages
        var changes: [(Date, Int)] = outages.map { ($0.from, -1) } + outages.map { ($0.until ?? end, 1) }
        changes.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        let total = lanes.count
        func y(_ serving: Int) -> Double { 4 + (RunTimeline.capacityHeight - 4) * (1 - Double(serving) / Double(max(1, total))) }
        var serving = total
        var lowest = total
        var path = "M\(number(x(first))) \(number(y(serving)))"
        for (at, delta) in changes {
            serving += delta
            lowest = min(lowest, serving)
            path += " H\(number(x(at))) V\(number(y(serving)))"
        }
        path += " H\(number(x(end)))"
        svg += "<text x=\"0\" y=\"14\" class=\"label\">in service</text><text x=\"0\" y=\"30\" class=\"label muted\">lowest \(lowest) of \(total)</text>\n"
        svg += "<line x1=\"\(number(RunTimeline.labels))\" y1=\"\(number(y(total)))\" x2=\"\(number(RunTimeline.labels + RunTimeline.plot))\" y2=\"\(number(y(total)))\" class=\"grid\"/>"
        svg += "<path d=\"\(path)\" class=\"capacity\" data-lowest=\"\(lowest)\" data-total=\"\(total)\"/>\n"

        for (index, target) in lanes.enumerated() {
            let laneY = top + Double(index) * RunTimeline.lane
            svg += "<g class=\"lane\" data-target=\"\(escape(target))\"><text x=\"0\" y=\"\(number(laneY + 12))\" class=\"label\">\(escape(target))</text>"
            for step in run.steps where step.targetID == target {
                let until = step.finishedAt ?? now
                let left = x(step.startedAt)
                let widthOf = max(1.5, x(until) - left)
                let took = max(.zero, until.since(step.startedAt)).readable
                svg += "<rect x=\"\(number(left))\" y=\"\(number(laneY + 2))\" width=\"\(number(widthOf))\" height=\"14\" class=\"phase-\(step.phase.rawValue) step-\(step.status.rawValue)\" data-from=\"\(ms(step.startedAt))\" data-until=\"\(ms(until))\">"
                svg += "<title>\(escape(target)) \(step.phase.rawValue) \(step.status.rawValue), \(took)</title></rect>"
            }
            for outage in outages where outage.target.id == target {
                let until = outage.until ?? end
                svg += "<rect x=\"\(number(x(outage.from)))\" y=\"\(number(laneY + 18))\" width=\"\(number(max(1.5, x(until) - x(outage.from))))\" height=\"3\" class=\"out\" data-from=\"\(ms(outage.from))\" data-until=\"\(ms(until))\">"
                svg += "<title>\(escape(target)) out of service \(max(.zero, until.since(outage.from)).readable)\(outage.until == nil ? " so far" : "")</title></rect>"
            }
            svg += "</g>\n"
        }
        let axisY = top + Double(lanes.count) * RunTimeline.lane + 14
        svg += "<text x=\"\(number(RunTimeline.labels))\" y=\"\(number(axisY))\" class=\"label muted\">0</text>"
        svg += "<text x=\"\(number(RunTimeline.labels + RunTimeline.plot))\" y=\"\(number(axisY))\" class=\"label muted\" text-anchor=\"end\">\(end.since(first).readable)</text>\n"
        return svg + "</svg>"
    }

    /// The colours' key, in the page (not the picture) so it wraps on a phone.
    static let legend = "<p class=\"legend\"><span class=\"key phase-prepare\"></span>prepare <span class=\"key phase-drain\"></span>drain <span class=\"key phase-deploy\"></span>deploy <span class=\"key phase-verify\"></span>verify <span class=\"key phase-restore\"></span>health wait <span class=\"key out\"></span>out of service <span class=\"key capacity-key\"></span>in service</p>"
}
