import Rollout
import WireFormat
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A run's log as a person reads it: each target's lines together (in the order the run first
/// touched each target), the run's own lines where they fall, and a line repeated back to back
/// (a poll saying `draining` every half second) folded into one: `draining ×6, 2.5 s`.
struct FoldedLog: Equatable {
    /// One line, or a line repeated `count` times until `lastAt`.
    struct Entry: Equatable {
        var line: LogLine
        var count = 1
        var lastAt: Date
    }

    enum Item: Equatable {
        /// A line of the run itself (no target).
        case run(Entry)
        case target(String, [Entry])
    }

    var items: [Item] = []

    init(_ lines: [LogLine]) {
        var groupAt: [String: Int] = [:]
        for line in lines {
            guard let target = line.targetID else {
                items.append(.run(Entry(line: line, lastAt: line.at)))
                continue
            }
            if let index = groupAt[target], case .target(let name, var entries) = items[index] {
                if var last = entries.last, last.line.text == line.text, last.line.stream == line.stream {
                    last.count += 1
                    last.lastAt = line.at
                    entries[entries.count - 1] = last
                } else {
                    entries.append(Entry(line: line, lastAt: line.at))
                }
                items[index] = .target(name, entries)
            } else {
                groupAt[target] = items.count
                items.append(.target(target, [Entry(line: line, lastAt: line.at)]))
            }
        }
    }

    /// `×6, 2.5 s` for a folded line; nil for a single one.
    static func folded(_ entry: Entry) -> String? {
        guard entry.count > 1 else { return nil }
        return "×\(entry.count), \(max(.zero, entry.lastAt.since(entry.line.at)).readable)"
    }

    /// The log's HTML: a `<details>` per target (open while the run runs, and for a target whose
    /// step failed), each line with an anchor (`#L12`, its sequence number) to link to.
    func html(open: (String) -> Bool) -> String {
        var html = ""
        for item in items {
            switch item {
            case .run(let entry):
                html += FoldedLog.line(entry)
            case .target(let target, let entries):
                let lines = entries.reduce(0) { $0 + $1.count }
                html += "<details class=\"log-group\" data-target=\"\(escape(target))\"\(open(target) ? " open" : "")><summary>\(escape(target)) <span class=\"muted\">\(lines) line\(lines == 1 ? "" : "s")</span></summary>"
                html += entries.map(FoldedLog.line).joined()
                html += "</details>"
            }
        }
        return html
    }

    static func line(_ entry: Entry) -> String {
        let exact = Timestamp.format(entry.line.at)
        // The time of day (UTC) to the millisecond; the whole stamp on hover.
        let clock = exact.split(separator: "T").last.map { String($0.dropLast()) } ?? exact
        var html = "<div class=\"line \(entry.line.stream.rawValue)\" id=\"L\(entry.line.seq)\"><a href=\"#L\(entry.line.seq)\" class=\"at\" title=\"\(exact)\">\(clock)</a> <span class=\"text\">\(escape(entry.line.text))</span>"
        if let folded = folded(entry) { html += " <span class=\"folded\" data-count=\"\(entry.count)\">\(folded)</span>" }
        return html + "</div>\n"
    }
}
