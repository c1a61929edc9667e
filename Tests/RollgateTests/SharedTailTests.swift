@testable import Configuration
@testable import HTTPAPI
@testable import WireFormat
import Synchronization
import Testing
@testable import RollgateServer

/// Many streams on one source: one store read for all of them per refresh, the backlog
/// beyond what is held read directly, the end told once everything before it was read.
@Suite struct SharedTailTests {
    final class Source: Sendable {
        let fetches = Atomic<Int>(0)
        let lines = Mutex<[Int64]>([])
        let ended = Atomic<Bool>(false)

        func fetch(after: Int64) -> (frames: [StreamFrame], end: [UInt8]?) {
            fetches.add(1, ordering: .relaxed)
            let frames = lines.withLock { $0.filter { $0 > after } }.prefix(500).map { StreamFrame(seq: $0, bytes: Array("\($0)".utf8)) }
            return (Array(frames), frames.isEmpty && ended.load(ordering: .relaxed) ? Array("end".utf8) : nil)
        }
    }

    @Test func readersInsideOneRefreshShareOneFetch() throws {
        let source = Source()
        source.lines.withLock { $0 = Array(1...10) }
        let tail = SharedTail(floor: 0) { source.fetch(after: $0) }
        for _ in 0..<200 {
            #expect(try tail.read(after: 4)?.frames.map(\.seq) == Array(5...10))
        }
        #expect(source.fetches.load(ordering: .relaxed) == 1, "200 readers within 150 ms: one store read")
    }

    @Test func aCursorOlderThanWhatIsHeldReadsTheStoreAndTheEndComesLast() throws {
        let source = Source()
        source.lines.withLock { $0 = Array(1...3000) }
        let tail = SharedTail(floor: 2500) { source.fetch(after: $0) }
        #expect(try tail.read(after: 100) == nil, "the backlog is not held")
        #expect(try tail.read(after: 2500)?.frames.count == 500)
        source.ended.store(true, ordering: .relaxed)
        let batch = try #require(try tail.read(after: 2999))
        #expect(batch.frames.map(\.seq) == [3000])
        #expect(batch.end == nil, "not ended while lines were still coming")
    }

    @Test func onlyTheLastTwoThousandFramesAreKeptAndAFollowerSeesEveryOneInOrder() throws {
        let source = Source()
        source.lines.withLock { $0 = Array(1...3000) }
        let tail = SharedTail(floor: 0, freshness: .zero) { source.fetch(after: $0) }
        var cursor: Int64 = 0
        var seen: [Int64] = []
        while let frames = try tail.read(after: cursor)?.frames, !frames.isEmpty {
            seen += frames.map(\.seq)
            cursor = frames.last!.seq
        }
        #expect(seen == Array(1...3000), "in order, no gaps, no repeats")
        #expect(try tail.read(after: 0) == nil, "the first 1,000 are no longer held")
        #expect(try tail.read(after: 1000)?.frames.count == 2000)
    }
}
