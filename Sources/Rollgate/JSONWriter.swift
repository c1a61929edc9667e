import MicroHTTP
import Rollout
import SQLiteStore

/// Writes JSON straight into bytes, keys in the order written, commas handled: what the API
/// answers with. (Building a `JSONValue` tree first cost a third of a run read.)
struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    /// Whether the open container at each depth has a value (and so needs a comma before the
    /// next): a bit per depth, the innermost lowest, as a JSON nesting past 64 goes to `deeper`.
    private var hasValue: UInt64 = 0
    private var deeper: [UInt64] = []
    private var depth = 0
    private var afterKey = false

    init(capacity: Int = 1024) { bytes.reserveCapacity(capacity) }

    private mutating func separate() {
        if afterKey { afterKey = false; return }
        if hasValue & 1 != 0 { bytes.append(UInt8(ascii: ",")) }
        hasValue |= 1
    }

    private mutating func enter() {
        if depth % 64 == 63 { deeper.append(hasValue); hasValue = 0 } else { hasValue <<= 1 }
        depth += 1
    }

    private mutating func leave() {
        depth -= 1
        if depth % 64 == 63 { hasValue = deeper.removeLast() } else { hasValue >>= 1 }
    }

    /// A key written in the code: its bytes straight from the binary (escaped all the same if
    /// a literal holds a quote, backslash or control character).
    mutating func key(_ name: StaticString) {
        separate()
        name.withUTF8Buffer { utf8 in
            if utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                JSONText.appendQuoted(String(decoding: utf8, as: UTF8.self), to: &bytes)
            } else {
                bytes.append(UInt8(ascii: "\""))
                bytes.append(contentsOf: utf8)
                bytes.append(UInt8(ascii: "\""))
            }
        }
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    /// A key from data: escaped.
    mutating func key(text name: String) {
        separate()
        JSONText.appendQuoted(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    mutating func null() { separate(); raw("null") }
    mutating func bool(_ value: Bool) { separate(); raw(value ? "true" : "false") }

    private mutating func raw(_ text: StaticString) { text.withUTF8Buffer { bytes.append(contentsOf: $0) } }

    mutating func string(_ value: String?) {
        guard let value else { return null() }
        separate()
        JSONText.appendQuoted(value, to: &bytes)
    }

    mutating func int(_ value: Int64?) {
        guard let value else { return null() }
        separate()
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[19 - count] = UInt8(48 + magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            bytes.append(contentsOf: buffer[(20 - count)...])
        }
    }

    mutating func double(_ value: Double) {
        if value == value.rounded() && abs(value) < 1e15 { return int(Int64(value)) }
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    /// RFC 3339 UTC with milliseconds, or null.
    mutating func time(_ date: Date?) {
        guard let date else { return null() }
        separate()
        bytes.append(UInt8(ascii: "\""))
        Timestamp.append(date, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func object(_ body: (inout JSONWriter) -> Void) {
        container(UInt8(ascii: "{"), UInt8(ascii: "}"), body)
    }

    mutating func array(_ body: (inout JSONWriter) -> Void) {
        container(UInt8(ascii: "["), UInt8(ascii: "]"), body)
    }

    private mutating func container(_ open: UInt8, _ close: UInt8, _ body: (inout JSONWriter) -> Void) {
        separate()
        bytes.append(open)
        enter()
        body(&self)
        leave()
        bytes.append(close)
    }

    mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let b): bool(b)
        case .number(let n): double(n)
        case .string(let s): string(s)
        case .array(let items): array { w in for item in items { w.value(item) } }
        case .object(let pairs): object { w in for (k, v) in pairs { w.key(text: k); w.value(v) } }
        }
    }
}

/// The API's shapes of runs, steps and log lines.
extension JSONWriter {
    mutating func run(_ run: Run) {
        object { w in
            w.key("id"); w.int(run.id)
            w.key("service"); w.string(run.service)
            w.key("version"); w.string(run.version)
            w.key("reason"); w.string(run.reason)
            w.key("requested_by"); w.string(run.requestedBy)
            w.key("status"); w.string(run.status.rawValue)
            w.key("created_at"); w.time(run.createdAt)
            w.key("started_at"); w.time(run.startedAt)
            w.key("finished_at"); w.time(run.finishedAt)
            w.key("error"); w.string(run.error)
            w.key("cancel_requested"); w.bool(run.cancelRequested)
            w.key("kind"); w.string(run.kind.name)
            if case .restore(let target) = run.kind { w.key("restore_target"); w.string(target.id) }
            w.key("wait_for_lock"); w.bool(run.waitForLock)
            w.key("interruptions"); w.int(Int64(run.interruptions))
            w.key("current_target"); w.string(run.status == .running ? run.currentTarget : nil)
            w.key("steps"); w.array { w in for step in run.steps { w.step(step) } }
            let outages = run.outages
            w.key("out_of_service"); w.array { w in
                for outage in outages {
                    w.object { w in
                        w.key("target_id"); w.string(outage.target.id)
                        w.key("target_port"); w.int(Int64(outage.target.port))
                        w.key("from"); w.time(outage.from)
                        w.key("until"); w.time(outage.until)
                        w.key("ms"); if let ms = outage.milliseconds { w.int(ms) } else { w.null() }
                    }
                }
            }
            w.key("out_of_service_ms"); w.int(outages.compactMap(\.milliseconds).reduce(0, +))
            w.key("rolled_back_to"); w.string(run.rollbackTo)
        }
    }

    mutating func step(_ step: Step) {
        object { w in
            w.key("id"); w.int(step.id)
            w.key("target_id"); w.string(step.targetID)
            w.key("target_port"); w.int(Int64(step.targetPort))
            w.key("phase"); w.string(step.phase.rawValue)
            w.key("status"); w.string(step.status.rawValue)
            w.key("started_at"); w.time(step.startedAt)
            w.key("finished_at"); w.time(step.finishedAt)
            w.key("error"); w.string(step.error)
        }
    }

    mutating func logLine(_ line: LogLine) {
        object { w in
            w.key("seq"); w.int(line.seq)
            w.key("at"); w.time(line.at)
            w.key("stream"); w.string(line.stream.rawValue)
            w.key("target_id"); w.string(line.targetID)
            w.key("phase"); w.string(line.phase?.rawValue)
            w.key("text"); w.string(line.text)
        }
    }

    /// A service: last good version, its lock, the running run and where it is, queued
    /// runs, and every target it knows: what the load balancer says, or `left_out` for a
    /// target rollgate took out and has not put back (null if the group cannot be asked).
    mutating func service(_ service: ServiceConfig, _ summary: ServiceSummary, _ targets: [TargetView]?, now: Date) {
        object { w in
            w.key("name"); w.string(service.name)
            w.key("target_group")
            switch service.source {
            case .simulated: w.string("simulated")
            case .awsTargetGroup(let arn): w.string(arn)
            }
            w.key("last_good_version"); w.string(summary.lastGoodVersion)
            w.key("last_good_run_id"); w.int(summary.lastGoodRunID)
            w.key("lock")
            if let lock = summary.lock, lock.holds(at: now) { w.lock(lock) } else { w.null() }
            w.key("running")
            if let run = summary.running {
                let step = run.steps.last
                w.object { w in
                    w.key("run_id"); w.int(run.id)
                    w.key("version"); w.string(run.version)
                    w.key("since"); w.time(run.startedAt)
                    w.key("target_id"); w.string(step?.targetID)
                    w.key("phase"); w.string(step?.phase.rawValue)
                }
            } else {
                w.null()
            }
            w.key("queued"); w.array { w in for id in summary.queued { w.int(id) } }
            w.key("left_out"); w.int(Int64(summary.leftOut.count))
            w.key("targets")
            if let targets {
                w.array { w in for view in targets { w.target(view) } }
            } else {
                w.null()
            }
        }
    }

    mutating func target(_ view: TargetView) {
        object { w in
            w.key("id"); w.string(view.target.id)
            w.key("port"); w.int(Int64(view.target.port))
            w.key("state"); w.string(view.state)
            w.key("reason"); w.string(view.health?.reason)
            w.key("load_balancer_state"); w.string(view.health?.state.rawValue)
            w.key("left_out")
            if let left = view.leftOut { w.leftOut(left) } else { w.null() }
        }
    }

    mutating func leftOut(_ left: LeftOutTarget) {
        object { w in
            w.key("target_id"); w.string(left.target.id)
            w.key("port"); w.int(Int64(left.target.port))
            w.key("run_id"); w.int(left.runID)
            w.key("phase"); w.string(left.phase.rawValue)
            w.key("reason"); w.string(left.reason)
            w.key("since"); w.time(left.since)
        }
    }

    mutating func lock(_ lock: ServiceLock) {
        object { w in
            w.key("service"); w.string(lock.service)
            w.key("reason"); w.string(lock.reason)
            w.key("locked_by"); w.string(lock.lockedBy)
            w.key("since"); w.time(lock.createdAt)
            w.key("expires_at"); w.time(lock.expiresAt)
        }
    }

    static func bytes(_ body: (inout JSONWriter) -> Void) -> [UInt8] {
        var writer = JSONWriter()
        body(&writer)
        return writer.bytes
    }
}
