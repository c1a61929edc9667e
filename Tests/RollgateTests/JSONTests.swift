import Testing
@testable import Rollgate
import Rollout

@Suite struct JSONTests {
    @Test func timestampsAreRFC3339UTCWithMilliseconds() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_800_000_000.123)) == "2027-01-15T08:00:00.123Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 951_782_400.5)) == "2000-02-29T00:00:00.500Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 4_102_444_799.999)) == "2099-12-31T23:59:59.999Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: -1)) == "1969-12-31T23:59:59.000Z")
    }

    @Test func theWriterNestsAndSeparatesAndEscapes() {
        let bytes = JSONWriter.bytes { w in
            w.object { w in
                w.key("a"); w.int(-12)
                w.key("b"); w.array { w in w.int(0); w.string(nil); w.bool(true); w.object { _ in } ; w.array { _ in } }
                w.key("c\"d"); w.string("line\nbreak \u{1} é")
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

    @Test func aRunHasEveryFieldTheContractNamesEvenWhenNull() throws {
        let run = Run(id: 3, service: "web", version: "v1", createdAt: Date(timeIntervalSince1970: 0))
        let value = try #require(JSONValue.parse(JSONWriter.bytes { $0.run(run) }))
        for key in ["id", "service", "version", "status", "created_at", "started_at", "finished_at", "error", "steps"] {
            #expect(value[key] != nil, "\(key)")
        }
    }
}
