import MicroHTTP
import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

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
    /// A whole number that fits in 64 bits; nil for fractions, huge numbers, inf and nan
    /// (never a trap: a signed payload may hold anything).
    public var int: Int64? {
        guard let number, number.isFinite, number == number.rounded(), abs(number) < 9.0e18 else { return nil }
        return Int64(number)
    }
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

    /// Bytes in `2026-11-24T20:06:02.123Z`.
    static let length = 24

    static func append(_ date: Date, to out: inout [UInt8]) {
        var text: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var day = Day()
        withUnsafeMutableBytes(of: &text) { buffer in
            let bytes = buffer.bindMemory(to: UInt8.self)
            write(date, to: bytes.baseAddress!, day: &day)
            out.append(contentsOf: bytes)
        }
    }

    /// The date part last written (`2026-11-24`): a run's timestamps mostly share a day, and
    /// the calendar arithmetic is most of the cost of one.
    struct Day {
        var number = Int64.min
        var text: (UInt64, UInt16) = (0, 0)
    }

    /// Writes the `length` bytes at `out`: no allocation (a run's JSON holds dozens).
    static func write(_ date: Date, to out: UnsafeMutablePointer<UInt8>, day: inout Day) {
        let (days, rest) = UTCTime.split(milliseconds: date.milliseconds)
        @inline(__always) func two(_ v: Int64, _ at: Int) {
            out[at] = UInt8(48 + v / 10 % 10)
            out[at + 1] = UInt8(48 + v % 10)
        }
        if days == day.number {
            withUnsafeBytes(of: day.text) { out.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: 10) }
        } else {
            let (year, month, dayOfMonth) = UTCTime.civil(days: days)
            two(year / 100, 0); two(year, 2); out[4] = 45
            two(month, 5); out[7] = 45
            two(dayOfMonth, 8)
            day.number = days
            withUnsafeMutableBytes(of: &day.text) { $0.bindMemory(to: UInt8.self).baseAddress!.update(from: out, count: 10) }
        }
        let (hour, minute, second, ms) = UTCTime.clock(milliseconds: rest)
        out[10] = 84
        two(hour, 11); out[13] = 58
        two(minute, 14); out[16] = 58
        two(second, 17); out[19] = 46
        two(ms / 10, 20); out[22] = UInt8(48 + ms % 10)
        out[23] = 90
    }
}


/// The keys of a JSON object's top level, in order and with repeats, which a decoder folds
/// away; nil if the bytes are not an object. Only the keys are read, as written.
package enum JSONObjectKeys {
    package static func topLevel(_ bytes: [UInt8]) -> [String]? {
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
