import Dispatch
import Testing
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore
import Synchronization
import Foundation

/// The run's log batches lines into transactions. What must hold with several hooks printing
/// at once: a hook's reader never waits for another's transaction, every line is stored once,
/// each hook's lines in the order printed, and a failed write keeps its lines ahead of later ones.
@Suite struct RunLogTests {
    struct Refused: Error {}

    /// A gate a test opens: the batch writer (on a hook's thread) waits in it; the test sees
    /// it waiting by polling, never blocking one of Swift's few cooperative threads.
    final class Gate: Sendable {
        let entered = Flag(false)
        let open = DispatchSemaphore(value: 0)
        func enter() { entered.set(); _ = open.wait(timeout: .now() + 30) }
    }

    /// Runs `body` on a thread of its own, as a hook's pipe reader runs.
    static func onHookThread(_ body: @escaping @Sendable () -> Void) -> Task<Void, Never> {
        Task { await withCheckedContinuation { done in DispatchQueue(label: "test.hook").async { body(); done.resume() } } }
    }

    /// Polls until `condition` holds (or 30 s pass, so a broken run fails instead of hanging).
    static func eventually(_ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while !condition() {
            if ContinuousClock.now > deadline { return false }
            await Task.yield()
        }
        return true
    }

    final class Flag: Sendable {
        let value: Mutex<Bool>
        init(_ value: Bool) { self.value = Mutex(value) }
        /// The value, and `false` from now on.
        func take() -> Bool { value.withLock { let was = $0; $0 = false; return was } }
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    static let at = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func aReaderDoesNotWaitForAnotherReadersWrite() async throws {
        let store = try Store.forTests()
        let journal = GatedJournal(store)
        try store.enqueue(service: "web", version: "v1", at: Self.at)
        let log = RunLog(run: 1, journal: journal, mask: SecretMask(), health: StoreHealth(), flushDelay: nil)
        let gate = Gate()
        let first = Flag(true)
        journal.beforeLogBatch.withLock { hook in
            hook = { _ in
                guard first.take() else { return }
                gate.enter()
            }
        }
        // Hook a: its 500th line fills a batch, and its reader writes it (and is held there).
        let a = Self.onHookThread {
            for n in 1...RunLog.batchLines { log.append(.stdout, target: "a", phase: .deploy, text: "a \(n)", at: Self.at) }
        }
        #expect(await Self.eventually { gate.entered.isSet }, "the first batch reached the journal")
        // Hook b prints 1,200 lines meanwhile: none of them waits for a's transaction.
        for n in 1...1200 { log.append(.stdout, target: "b", phase: .deploy, text: "b \(n)", at: Self.at) }
        #expect(try store.logs.isEmpty, "a's batch is still held: b did not wait for it")
        #expect(log.waiting == 1200)
        gate.open.signal()
        await a.value
        #expect(log.flush(at: Self.at))
        let texts = try store.logs.map(\.text)
        #expect(texts.count == RunLog.batchLines + 1200)
        #expect(Array(texts.prefix(RunLog.batchLines)) == (1...RunLog.batchLines).map { "a \($0)" })
        #expect(texts.filter { $0.hasPrefix("b ") } == (1...1200).map { "b \($0)" })
        #expect(try store.logs.map(\.seq) == (1...Int64(texts.count)).map { $0 })
    }

    /// A hook printing faster than the journal stores must not grow the backlog without bound:
    /// past `backlogLines` its reader waits for the writer. Transactions stay at most
    /// `transactionLines` long, and every line still arrives once, in order.
    @Test func aFloodWaitsForTheWriterPastTheBacklogAndTransactionsStayShort() async throws {
        let store = try Store.forTests()
        let journal = GatedJournal(store)
        try store.enqueue(service: "web", version: "v1", at: Self.at)
        let log = RunLog(run: 1, journal: journal, mask: SecretMask(), health: StoreHealth(), flushDelay: nil)
        let gate = Gate()
        let first = Flag(true)
        let sizes = Mutex<[Int]>([])
        journal.beforeLogBatch.withLock { hook in
            hook = { batch in
                sizes.withLock { $0.append(batch.count) }
                guard first.take() else { return }
                gate.enter()
            }
        }
        // Hook a fills a batch; its reader writes it and is held in the journal.
        let a = Self.onHookThread {
            log.append(.stdout, target: "a", phase: .deploy, lines: (1...RunLog.batchLines).map { "a \($0)" }, at: Self.at)
        }
        #expect(await Self.eventually { gate.entered.isSet })
        // Hook b floods meanwhile: it fills the backlog, then waits for the writer.
        let appended = Atomic<Int>(0)
        let total = 100_000, chunk = 1_000
        let flood = Self.onHookThread {
            for start in stride(from: 1, through: total, by: chunk) {
                log.append(.stdout, target: "b", phase: .deploy, lines: (start..<(start + chunk)).map(String.init), at: Self.at)
                appended.add(chunk, ordering: .relaxed)
            }
        }
        #expect(await Self.eventually { log.readerWaits > 0 }, "the flood's reader waited for the writer")
        let atTheLimit = appended.load(ordering: .relaxed)
        #expect(atTheLimit <= RunLog.backlogLines + chunk, "\(atTheLimit) lines taken while nothing could be written")
        #expect(log.waiting >= RunLog.backlogLines && log.waiting <= RunLog.backlogLines + chunk)
        #expect(log.readerWaits == 1)
        gate.open.signal()
        await a.value
        await flood.value
        #expect(log.flush(at: Self.at))
        #expect(try store.logs.filter { $0.text.hasPrefix("a ") }.map(\.text) == (1...RunLog.batchLines).map { "a \($0)" })
        #expect(try store.logs.filter { !$0.text.hasPrefix("a ") }.map(\.text) == (1...total).map(String.init))
        #expect(sizes.withLock { $0 }.allSatisfy { $0 <= RunLog.transactionLines })
    }

    @Test func manyReadersAtOnceStoreEveryLineOnceInOrder() async throws {
        let store = try Store.forTests()
        let journal = GatedJournal(store)
        try store.enqueue(service: "web", version: "v1", at: Self.at)
        let log = RunLog(run: 1, journal: journal, mask: SecretMask(), health: StoreHealth(), flushDelay: nil)
        let readers = 4, lines = 3000
        await withTaskGroup(of: Void.self) { group in
            for reader in 0..<readers {
                group.addTask {
                    for n in 1...lines { log.append(.stdout, target: "t\(reader)", phase: .deploy, text: "\(n)", at: Self.at) }
                }
            }
        }
        #expect(log.flush(at: Self.at))
        let stored = try store.logs
        #expect(stored.count == readers * lines)
        for reader in 0..<readers {
            #expect(stored.filter { $0.targetID == "t\(reader)" }.map(\.text) == (1...lines).map(String.init))
        }
    }

    @Test func aFailedWriteKeepsItsLinesAheadOfLaterOnes() throws {
        let store = try Store.forTests()
        let journal = GatedJournal(store)
        try store.enqueue(service: "web", version: "v1", at: Self.at)
        let health = StoreHealth()
        let log = RunLog(run: 1, journal: journal, mask: SecretMask(), health: health, flushDelay: nil)
        let refuse = Flag(true)
        journal.beforeLogBatch.withLock { $0 = { _ in if refuse.isSet { throw Refused() } } }
        for n in 1...RunLog.batchLines { log.append(.stdout, target: "a", phase: .deploy, text: "\(n)", at: Self.at) }
        #expect(try store.logs.isEmpty)
        #expect(health.failure != nil)
        for n in (RunLog.batchLines + 1)...(RunLog.batchLines + 10) { log.append(.stdout, target: "a", phase: .deploy, text: "\(n)", at: Self.at) }
        #expect(!log.flush(at: Self.at), "still refused: flush says lines are left")
        #expect(log.waiting == RunLog.batchLines + 10)
        _ = refuse.take()
        #expect(log.flush(at: Self.at))
        #expect(try store.logs.map(\.text) == (1...(RunLog.batchLines + 10)).map(String.init))
        #expect(health.failure == nil)
    }
}
