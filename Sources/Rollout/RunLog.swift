import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Replaces every configured secret value in a line by `***` before it is stored.
public struct SecretMask: Sendable {
    let secrets: [String]

    /// Values shorter than 6 bytes are not masked (they would mask ordinary words).
    public init(_ secrets: [String] = []) {
        self.secrets = Array(Set(secrets.filter { $0.utf8.count >= 6 })).sorted { $0.utf8.count > $1.utf8.count }
    }

    public func apply(_ text: String) -> String {
        guard !secrets.isEmpty else { return text }
        var bytes = Array(text.utf8)
        var changed = false
        for secret in secrets {
            let needle = Array(secret.utf8)
            var index = 0
            var out: [UInt8] = []
            while index < bytes.count {
                if bytes[index] == needle[0], index + needle.count <= bytes.count, bytes[index..<(index + needle.count)].elementsEqual(needle) {
                    out.append(contentsOf: "***".utf8)
                    index += needle.count
                    changed = true
                } else {
                    out.append(bytes[index])
                    index += 1
                }
            }
            bytes = out
        }
        return changed ? String(decoding: bytes, as: UTF8.self) : text
    }
}

/// A run's log lines on their way to the journal, written in batches: a line waits at most
/// `batchDelay` (5 ms) or until `batchLines` (500) are waiting, then everything waiting goes in
/// transactions of up to `transactionLines`, so a hook printing 100,000 lines a second costs a
/// few hundred commits, not 100,000. While output is quiet, a crash (kill -9) loses at most the
/// lines of the last 5 ms (under a flood, see below). A line that cannot be
/// written now (the database is locked, full or read-only) is kept, in order, and written
/// before any later line once writes succeed again: a line is never dropped for a failed write.
///
/// Adding a line only takes the short `pending` lock: a hook's pipe reader never waits for a
/// transaction (with four hooks printing at once, it used to wait for each other's). One
/// writer at a time (`writing`) takes everything waiting and writes it, at most
/// `transactionLines` a transaction; it keeps going while a full batch waits, so readers that
/// find the writer busy just go on reading, until `backlogLines` wait: then a reader waits for
/// the writer (its pipe fills and the hook waits in turn), so a hook printing faster than the
/// database can store never grows rollgate's memory without bound. Under such a flood a
/// kill -9 loses at most the lines waiting (`backlogLines`) and the transaction in progress.
public final class RunLog: Sendable {
    public static let batchLines = 500
    public static let batchDelay: Duration = .milliseconds(5)
    public static let transactionLines = 5_000
    public static let backlogLines = 20_000

    let run: RunID
    let journal: any RunRecords
    let mask: SecretMask
    let health: StoreHealth
    /// Lines not written yet, oldest first.
    private let pending = Mutex<[LogEntry]>([])
    /// Held while a batch is taken and written, so batches reach the journal in the order
    /// their lines came.
    private let writing = Mutex<Void>(())
    /// Whether a timed flush is on its way.
    private let scheduled = Atomic<Bool>(false)
    private let backlogWaits = Atomic<Int>(0)
    /// The journal refused a write with `LeaseLost`: another process holds the run now, and
    /// nothing more of this process's is written into it (lines are dropped, never retried).
    private let leaseLost = Atomic<Bool>(false)
    public var lostTheRun: Bool { leaseLost.load(ordering: .relaxed) }
    /// How many times a reader found the backlog full and waited for the writer.
    public var readerWaits: Int { backlogWaits.load(ordering: .relaxed) }
    /// How long a line waits for company before it is written on its own; nil: only full
    /// batches and explicit flushes write (tests that hold the journal, without timer tasks).
    let flushDelay: Duration?
    /// The holding the lines are written under: a refused write loses it, so the running
    /// hook is stopped at once.
    let holding: LeaseGuard?
    /// Where a timed flush writes (the store's threads: the timer fires on Swift's pool, where
    /// no database write may wait); nil: where the timer fires (tests).
    let work: BlockingWork?

    public init(run: RunID, journal: any RunRecords, mask: SecretMask, health: StoreHealth,
                flushDelay: Duration? = RunLog.batchDelay, holding: LeaseGuard? = LeaseGuard.current, work: BlockingWork? = nil) {
        self.holding = holding
        self.work = work
        self.run = run
        self.journal = journal
        self.mask = mask
        self.health = health
        self.flushDelay = flushDelay
    }

    public func append(_ stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at: Date) {
        append(stream, target: target, phase: phase, lines: [text], at: at)
    }

    /// Lines that came together (one read of a hook's pipe): masked, then added under one lock.
    public func append(_ stream: LogLine.Stream, target: String?, phase: Phase?, lines texts: [String], at: Date) {
        guard !texts.isEmpty, !lostTheRun else { return }
        let lines = texts.map { LogEntry(stream: stream, target: target, phase: phase, text: mask.apply($0), at: at) }
        let waiting = pending.withLock { pending in
            pending.append(contentsOf: lines)
            return pending.count
        }
        // A full batch is written now unless a writer is at it already (it takes full
        // batches until none is left); past the backlog this reader waits for the writer.
        // Whatever is still waiting has a timer within 5 ms.
        if waiting >= RunLog.backlogLines {
            backlogWaits.add(1, ordering: .relaxed)
            _ = writing.withLock { _ in writeWaiting(at: at, fullBatchesOnly: true) }
        } else if waiting >= RunLog.batchLines {
            _ = writing.withLockIfAvailable { _ in writeWaiting(at: at, fullBatchesOnly: true) }
        }
        scheduleFlush(at: at)
    }

    /// Writes what is waiting; true when nothing is left (false when a write failed).
    @discardableResult
    public func flush(at now: Date) -> Bool {
        writing.withLock { _ in writeWaiting(at: now, fullBatchesOnly: false) }
    }

    public var waiting: Int { pending.withLock { $0.count } }

    /// A flush in `batchDelay`, unless one is on its way already.
    private func scheduleFlush(at: Date) {
        guard let flushDelay else { return }
        guard scheduled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        Task.detached { [self] in
            try? await Task.sleep(for: flushDelay)
            scheduled.store(false, ordering: .releasing)
            // Lines that come during this flush schedule the next one (the flag is down); lines
            // a failed write kept go with the next line's flush or the step's end.
            _ = try? await work.run { [self] in flush(at: at) }
        }
    }

    /// Takes the waiting lines and writes them, again while lines keep coming (a full batch
    /// at least, or any when `fullBatchesOnly` is false). Called holding `writing`. True when
    /// nothing is left waiting.
    private func writeWaiting(at now: Date, fullBatchesOnly: Bool) -> Bool {
        while true {
            let batch = pending.withLock { pending -> [LogEntry] in
                guard pending.count >= (fullBatchesOnly ? RunLog.batchLines : 1) else { return [] }
                defer { pending.removeAll(keepingCapacity: true) }
                return pending
            }
            guard !batch.isEmpty else { return pending.withLock { $0.isEmpty } }
            var written = 0
            do {
                while written < batch.count {
                    let end = min(written + RunLog.transactionLines, batch.count)
                    try journal.log(run: run, Array(batch[written..<end]))
                    written = end
                }
                health.succeeded()
            } catch is LeaseLost {
                // Not ours any more: what waits is dropped, and so is everything after it.
                leaseLost.store(true, ordering: .relaxed)
                holding?.lose()
                pending.withLock { $0.removeAll() }
                return true
            } catch {
                // Kept, ahead of anything that came meanwhile, for the next write.
                pending.withLock { $0.insert(contentsOf: batch[written...], at: 0) }
                health.failed(error, at: now)
                return false
            }
        }
    }
}
