import MicroHTTP
import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Writes JSON straight into bytes, keys in the order written, commas handled: what the API
/// answers with. (Building a `JSONValue` tree first cost a third of a run read; appending to
/// an Array byte by byte cost a sixth of it again, hence a buffer of its own.)
/// Not copyable: it owns its buffer, which `bytes` copies out once at the end.
package struct JSONWriter: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int
    /// Whether the open container at each depth has a value (and so needs a comma before the
    /// next): a bit per depth, the innermost lowest, as a JSON nesting past 64 goes to `deeper`.
    private var hasValue: UInt64 = 0
    private var deeper: [UInt64] = []
    private var depth = 0
    private var afterKey = false
    private var day = Timestamp.Day()

    init(capacity: Int = 4096) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    // MARK: The buffer

    /// Room for `more` bytes after `count`.
    @inline(__always) private mutating func reserve(_ more: Int) {
        if count + more > capacity { grow(more) }
    }

    private mutating func grow(_ more: Int) {
        let larger = max(capacity * 2, count + more)
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: larger)
        moved.update(from: base, count: count)
        base.deallocate()
        base = moved
        capacity = larger
    }

    @inline(__always) private mutating func put(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always) private mutating func put(_ buffer: UnsafeBufferPointer<UInt8>) {
        guard let source = buffer.baseAddress, buffer.count > 0 else { return }
        reserve(buffer.count)
        (base + count).update(from: source, count: buffer.count)
        count += buffer.count
    }

    private mutating func raw(_ text: StaticString) { text.withUTF8Buffer { put($0) } }

    /// `"text"` with `"`, `\\` and control characters escaped; other UTF-8 as it is.
    private mutating func quoted(_ utf8: UnsafeBufferPointer<UInt8>) {
        put(UInt8(ascii: "\""))
        if JSONText.needsEscaping(utf8) {
            JSONText.escape(utf8) { put($0) }
        } else {
            put(utf8)
        }
        put(UInt8(ascii: "\""))
    }

    private mutating func quoted(_ text: String) {
        var text = text
        text.withUTF8 { quoted($0) }
    }

    // MARK: Structure

    private mutating func separate() {
        if afterKey { afterKey = false; return }
        if hasValue & 1 != 0 { put(UInt8(ascii: ",")) }
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

    /// A key written in the code: its bytes straight from the binary, not scanned (a literal
    /// with a quote, backslash or control character is a mistake the debug build stops at;
    /// keys from data go through `key(text:)`).
    package mutating func key(_ name: StaticString) {
        separate()
        name.withUTF8Buffer { utf8 in
            assert(!JSONText.needsEscaping(utf8), "a JSON key literal that needs escaping: use key(text:)")
            reserve(utf8.count + 3)
            base[count] = UInt8(ascii: "\"")
            (base + count + 1).update(from: utf8.baseAddress!, count: utf8.count)
            base[count + utf8.count + 1] = UInt8(ascii: "\"")
            base[count + utf8.count + 2] = UInt8(ascii: ":")
            count += utf8.count + 3
        }
        afterKey = true
    }

    /// A key from data.
    package mutating func key(text name: String) {
        separate()
        quoted(name)
        put(UInt8(ascii: ":"))
        afterKey = true
    }

    // MARK: Values

    package mutating func null() { separate(); raw("null") }
    mutating func bool(_ value: Bool) { separate(); raw(value ? "true" : "false") }

    package mutating func string(_ value: String?) {
        guard let value else { return null() }
        separate()
        quoted(value)
    }

    package mutating func int(_ value: Int64?) {
        guard let value else { return null() }
        separate()
        reserve(20)
        if value < 0 { base[count] = UInt8(ascii: "-"); count += 1 }
        var magnitude = value.magnitude
        var digits = 1
        var rest = magnitude / 10
        while rest > 0 { digits += 1; rest /= 10 }
        var at = count + digits - 1
        repeat {
            base[at] = UInt8(48 + magnitude % 10)
            magnitude /= 10
            at -= 1
        } while magnitude > 0
        count += digits
    }

    package mutating func double(_ value: Double) {
        // JSON has no inf or nan: such a value is written as null, never as invalid JSON.
        guard value.isFinite else { return null() }
        if value == value.rounded() && abs(value) < 1e15 { return int(Int64(value)) }
        separate()
        var text = String(value)
        text.withUTF8 { put($0) }
    }

    /// RFC 3339 UTC with milliseconds, or null.
    package mutating func time(_ date: Date?) {
        guard let date else { return null() }
        separate()
        reserve(Timestamp.length + 2)
        base[count] = UInt8(ascii: "\"")
        Timestamp.write(date, to: base + count + 1, day: &day)
        base[count + Timestamp.length + 1] = UInt8(ascii: "\"")
        count += Timestamp.length + 2
    }

    package mutating func object(_ body: (inout JSONWriter) -> Void) {
        container(UInt8(ascii: "{"), UInt8(ascii: "}"), body)
    }

    package mutating func array(_ body: (inout JSONWriter) -> Void) {
        container(UInt8(ascii: "["), UInt8(ascii: "]"), body)
    }

    private mutating func container(_ open: UInt8, _ close: UInt8, _ body: (inout JSONWriter) -> Void) {
        separate()
        put(open)
        enter()
        body(&self)
        leave()
        put(close)
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
    /// `publicURL` (the config's `public_url`): the run's page, as `url`.
    /// `nextSteps`: given for one run (`GET /api/v1/runs/{id}`), written as `next_steps` when
    /// there are any (a failed or cancelled run that left something to do).
    /// `progress`: given for one running run, written as `targets_done`, `targets_total` and
    /// `progress` (`1 of 3 targets done; web-2 draining for 12 s of ~10 min`).
    package mutating func run(_ run: Run, publicURL: String? = nil, nextSteps: [NextStep]? = nil,
                              progress: (done: Int, total: Int, text: String)? = nil) {
        object { w in
            w.key("id"); w.int(run.id)
            if let publicURL { w.key("url"); w.string("\(publicURL)/runs/\(run.id)") }
            w.key("service"); w.string(run.service)
            w.key("version"); w.string(run.version)
            w.key("reason"); w.string(run.reason)
            w.key("requested_by"); w.string(run.requestedBy)
            w.key("status"); w.string(run.status.rawValue)
            w.key("created_at"); w.time(run.createdAt)
            w.key("started_at"); w.time(run.startedAt)
            w.key("finished_at"); w.time(run.finishedAt)
            w.key("error"); w.string(run.error)
            // Where a failed run failed; null for any other status.
            w.key("error_code"); w.string(run.status == .failed ? run.errorCode?.rawValue : nil)
            w.key("cancel_requested"); w.bool(run.cancelRequested)
            w.key("kind"); w.string(run.kind.name)
            if case .restore(let target) = run.kind { w.key("restore_target"); w.string(target.id) }
            w.key("wait_for_lock"); w.bool(run.waitForLock)
            w.key("interruptions"); w.int(Int64(run.interruptions))
            w.key("rolled_by"); w.string(run.rolledBy)
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
            // Target time: the spans summed (a batch's overlap counts for each target).
            w.key("out_of_service_ms"); w.int(outages.compactMap(\.milliseconds).reduce(0, +))
            // How long the service was short (at least one target out): never more than the run took.
            w.key("short_of_capacity_ms"); w.int(OutOfService(run, now: run.finishedAt ?? Date()).map { Int64(($0.shortFor.seconds * 1000).rounded()) } ?? 0)
            w.key("rolled_back_to"); w.string(run.rollbackTo)
            // Asked for as a rollback: the version it rolls back from.
            w.key("rollback_from"); w.string(run.rollbackFrom)
            if let progress {
                w.key("targets_done"); w.int(Int64(progress.done))
                w.key("targets_total"); w.int(Int64(progress.total))
                w.key("progress"); w.string(progress.text)
            }
            if let nextSteps, !nextSteps.isEmpty {
                // What to do now (a failed or cancelled run), as commands to paste.
                w.key("next_steps"); w.array { w in
                    for step in nextSteps {
                        w.object { w in
                            w.key("command"); w.string(step.command(service: run.service))
                            w.key("text"); w.string(step.text(service: run.service))
                        }
                    }
                }
            }
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

    package mutating func logLine(_ line: LogLine) {
        object { w in
            w.key("seq"); w.int(line.seq)
            w.key("at"); w.time(line.at)
            w.key("stream"); w.string(line.stream.rawValue)
            w.key("target_id"); w.string(line.targetID)
            w.key("phase"); w.string(line.phase?.rawValue)
            w.key("text"); w.string(line.text)
        }
    }

    package mutating func leftOut(_ left: LeftOutTarget) {
        object { w in
            w.key("target_id"); w.string(left.target.id)
            w.key("port"); w.int(Int64(left.target.port))
            w.key("run_id"); w.int(left.runID)
            w.key("phase"); w.string(left.phase.rawValue)
            w.key("reason"); w.string(left.reason)
            w.key("since"); w.time(left.since)
        }
    }

    package mutating func lock(_ lock: ServiceLock) {
        object { w in
            w.key("service"); w.string(lock.service)
            w.key("reason"); w.string(lock.reason)
            w.key("locked_by"); w.string(lock.lockedBy)
            w.key("since"); w.time(lock.createdAt)
            w.key("expires_at"); w.time(lock.expiresAt)
        }
    }

    package static func bytes(_ body: (inout JSONWriter) -> Void) -> [UInt8] {
        var writer = JSONWriter()
        body(&writer)
        return writer.bytes
    }
}
