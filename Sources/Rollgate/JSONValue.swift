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

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public var bytes: [UInt8] { JSONWriter.bytes { $0.value(self) } }

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
        var out: [UInt8] = []
        out.reserveCapacity(24)
        append(date, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func append(_ date: Date, to out: inout [UInt8]) {
        let t = UTCTime(date)
        func two(_ v: Int64) -> (UInt8, UInt8) { (UInt8(48 + v / 10 % 10), UInt8(48 + v % 10)) }
        let (y1, y2) = two(t.year / 100), (y3, y4) = two(t.year), (m1, m2) = two(t.month), (d1, d2) = two(t.day)
        let (h1, h2) = two(t.hour), (i1, i2) = two(t.minute), (s1, s2) = two(t.second)
        let (f1, f2) = two(t.millisecond / 10)
        // Through a fixed-size buffer on the stack: an array literal here cost an allocation
        // per timestamp (six or more in a run's JSON).
        let text: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                   UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (y1, y2, y3, y4, 45, m1, m2, 45, d1, d2, 84, h1, h2, 58, i1, i2, 58, s1, s2, 46,
             f1, f2, UInt8(48 + t.millisecond % 10), 90)
        withUnsafeBytes(of: text) { out.append(contentsOf: $0) }
    }
}


/// The keys of a JSON object's top level, in order and with repeats, which a decoder folds
/// away; nil if the bytes are not an object. Only the keys are read, as written.
enum JSONObjectKeys {
    static func topLevel(_ bytes: [UInt8]) -> [String]? {
        var keys: [String] = []
        var depth = 0
        var expectingKey = false
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                let start = index
                index += 1
                while index < bytes.count && bytes[index] != UInt8(ascii: "\"") {
                    if bytes[index] == UInt8(ascii: "\\") { index += 1 }
                    index += 1
                }
                guard index < bytes.count else { return nil }
                if depth == 1 && expectingKey {
                    guard let key = try? JSONDecoder().decode(String.self, from: Data(bytes[start...index])) else { return nil }
                    keys.append(key)
                    expectingKey = false
                }
            case UInt8(ascii: "{"):
                if depth == 0 && !keys.isEmpty { return nil }
                depth += 1
                expectingKey = depth == 1
            case UInt8(ascii: "["):
                if depth == 0 { return nil }
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                expectingKey = depth == 1
            default:
                break
            }
            index += 1
        }
        return keys
    }
}
