@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import WireFormat
import Testing
@testable import RollgateServer
import Rollout
import Foundation

@Suite struct JSONTests {
    @Test func timestampsAreRFC3339UTCWithMilliseconds() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_800_000_000.123)) == "2027-01-15T08:00:00.123Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 951_782_400.5)) == "2000-02-29T00:00:00.500Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 4_102_444_799.999)) == "2099-12-31T23:59:59.999Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: -1)) == "1969-12-31T23:59:59.000Z")
    }

    /// One writer keeps the last date part it wrote: times that change day, go back to an
    /// earlier one, or lie before 1970 are each written whole and right.
    @Test func timesAcrossDaysInOneWriter() {
        let seconds: [Double] = [1_800_000_000.123, 1_800_000_001.999, 1_800_086_400, 1_800_000_000.5, -1, -86_400.001, 0, 951_782_400.5]
        let bytes = JSONWriter.bytes { w in w.array { w in for s in seconds { w.time(Date(timeIntervalSince1970: s)) } } }
        #expect(String(decoding: bytes, as: UTF8.self) == "[" + [
            "2027-01-15T08:00:00.123Z", "2027-01-15T08:00:01.999Z", "2027-01-16T08:00:00.000Z", "2027-01-15T08:00:00.500Z",
            "1969-12-31T23:59:59.000Z", "1969-12-30T23:59:59.999Z", "1970-01-01T00:00:00.000Z", "2000-02-29T00:00:00.500Z",
        ].map { "\"\($0)\"" }.joined(separator: ",") + "]")
    }

    @Test func theWriterNestsAndSeparatesAndEscapes() {
        let bytes = JSONWriter.bytes { w in
            w.object { w in
                w.key("a"); w.int(-12)
                w.key("b"); w.array { w in w.int(0); w.string(nil); w.bool(true); w.object { _ in } ; w.array { _ in } }
                w.key(text: "c\"d"); w.string("line\nbreak \u{1} é")
                w.key("e"); w.double(1.5)
                w.key("f"); w.int(Int64.min)
            }
        }
        #expect(String(decoding: bytes, as: UTF8.self) ==
                #"{"a":-12,"b":[0,null,true,{},[]],"c\"d":"line\nbreak \u0001 é","e":1.5,"f":-9223372036854775808}"#)
        #expect(JSONValue.parse(bytes) != nil, "valid JSON")
    }

    /// The writer keeps "needs a comma" as a bit per depth, 64 to a word: nesting across
    /// several words must still separate every level, on the way in and out.
    @Test func deepNestingSeparatesEveryLevel() {
        func nest(_ w: inout JSONWriter, _ depth: Int) {
            w.int(Int64(depth))
            if depth < 150 { w.array { w in nest(&w, depth + 1) } }
            w.int(-Int64(depth))
        }
        let bytes = JSONWriter.bytes { w in w.array { w in nest(&w, 1) } }
        var expected = "["
        for depth in 1...150 { expected += "\(depth)" + (depth < 150 ? ",[" : "") }
        for depth in (1...150).reversed() { expected += ",-\(depth)" + (depth > 1 ? "]" : "") }
        expected += "]"
        #expect(String(decoding: bytes, as: UTF8.self) == expected)
    }

    /// The writer's buffer starts at 4 KiB and grows: text past it (escapes included) and
    /// numbers at the edges come out whole.
    @Test func longTextGrowsTheBufferAndRoundTrips() throws {
        let text = String(repeating: "line \"quoted\" \\ tab\t é\u{1}\n", count: 900)
        let bytes = JSONWriter.bytes { w in
            w.object { w in
                w.key("text"); w.string(text)
                w.key("numbers"); w.array { w in for n: Int64 in [0, 9, 10, Int64.max, Int64.min, -1] { w.int(n) } }
            }
        }
        #expect(bytes.count > 30_000)
        let value = try #require(JSONValue.parse(bytes))
        #expect(value["text"] == .string(text))
        #expect(String(decoding: bytes, as: UTF8.self).hasSuffix(#"\u0001\n","numbers":[0,9,10,9223372036854775807,-9223372036854775808,-1]}"#))
    }

    @Test func aRunHasEveryFieldTheContractNamesEvenWhenNull() throws {
        let run = Run(id: 3, service: "web", version: "v1", createdAt: Date(timeIntervalSince1970: 0))
        let value = try #require(JSONValue.parse(JSONWriter.bytes { $0.run(run) }))
        for key in ["id", "service", "version", "status", "created_at", "started_at", "finished_at", "error", "steps"] {
            #expect(value[key] != nil, "\(key)")
        }
    }
}
