import MicroHTTP
import Rollout

/// JSON with keys kept in the order written: what the API sends, and what tests read.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let pairs) = self { return pairs.first { $0.0 == key }?.1 }
        return nil
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var number: Double? { if case .number(let n) = self { return n }; return nil }
    public var int: Int64? { number.map { Int64($0) } }
    public var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var isNull: Bool { self == .null }

    public var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    public var bytes: [UInt8] { Array(text.utf8) }

    func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n):
            if n == n.rounded() && abs(n) < 1e15 { out += String(Int64(n)) } else { out += String(n) }
        case .string(let s): out += JSONText.quote(s)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (index, pair) in pairs.enumerated() {
                if index > 0 { out += "," }
                out += JSONText.quote(pair.0)
                out += ":"
                pair.1.write(to: &out)
            }
            out += "}"
        }
    }

    /// Parses JSON text; nil when it is not valid JSON.
    public static func parse(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }
}

extension JSONValue: Decodable {
    public init(from decoder: Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            var items: [JSONValue] = []
            while !array.isAtEnd { items.append(try array.decode(JSONValue.self)) }
            self = .array(items)
            return
        }
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            self = .object(try object.allKeys.map { ($0.stringValue, try object.decode(JSONValue.self, forKey: $0)) }
                .sorted { $0.0 < $1.0 })
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() { self = .null }
        else if let b = try? single.decode(Bool.self) { self = .bool(b) }
        else if let n = try? single.decode(Double.self) { self = .number(n) }
        else { self = .string(try single.decode(String.self)) }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// RFC 3339 UTC with milliseconds: `2026-11-24T20:06:02.123Z`.
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded())   // as the store keeps it
        let millis = Int((ms % 1000 + 1000) % 1000)
        let seconds = (ms - Int64(millis)) / 1000
        var days = seconds / 86_400
        var rest = seconds - days * 86_400
        if rest < 0 { rest += 86_400; days -= 1 }
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(rest / 3600, 2)):\(pad(rest % 3600 / 60, 2)):\(pad(rest % 60, 2)).\(pad(Int64(millis), 3))Z"
    }
}

extension JSONValue {
    static func time(_ date: Date?) -> JSONValue { date.map { .string(Timestamp.format($0)) } ?? .null }
    static func optional(_ text: String?) -> JSONValue { text.map(JSONValue.string) ?? .null }

    static func run(_ run: Run) -> JSONValue {
        .object([
            ("id", .number(Double(run.id))),
            ("service", .string(run.service)),
            ("version", .string(run.version)),
            ("reason", .optional(run.reason)),
            ("requested_by", .string(run.requestedBy)),
            ("status", .string(run.status.rawValue)),
            ("created_at", .time(run.createdAt)),
            ("started_at", .time(run.startedAt)),
            ("finished_at", .time(run.finishedAt)),
            ("error", .optional(run.error)),
            ("cancel_requested", .bool(run.cancelRequested)),
            ("current_target", run.status == .running ? .optional(run.currentTarget) : .null),
            ("steps", .array(run.steps.map(step))),
        ])
    }

    static func step(_ step: Step) -> JSONValue {
        .object([
            ("id", .number(Double(step.id))),
            ("target_id", .string(step.targetID)),
            ("target_port", .number(Double(step.targetPort))),
            ("phase", .string(step.phase.rawValue)),
            ("status", .string(step.status.rawValue)),
            ("started_at", .time(step.startedAt)),
            ("finished_at", .time(step.finishedAt)),
            ("error", .optional(step.error)),
        ])
    }

    static func logLine(_ line: LogLine) -> JSONValue {
        .object([
            ("seq", .number(Double(line.seq))),
            ("at", .time(line.at)),
            ("stream", .string(line.stream.rawValue)),
            ("target_id", .optional(line.targetID)),
            ("phase", .optional(line.phase?.rawValue)),
            ("text", .string(line.text)),
        ])
    }
}
