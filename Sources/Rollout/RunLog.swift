import Synchronization

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
/// one transaction, so a hook printing 100,000 lines a second costs a few hundred commits, not
/// 100,000. A crash (kill -9) loses at most the lines of the last 5 ms. A line that cannot be
/// written now (the database is locked, full or read-only) is kept, in order, and written
/// before any later line once writes succeed again: a line is never dropped for a failed write.
public final class RunLog: Sendable {
    public static let batchLines = 500
    public static let batchDelay: Duration = .milliseconds(5)

    let run: RunID
    let journal: any RunJournal
    let mask: SecretMask
    let health: StoreHealth
    /// Lines not written yet, oldest first. Writing happens under this lock so lines from a
    /// hook's thread and the roll's own never overtake one another.
    private let pending = Mutex<[LogEntry]>([])
    /// Whether a timed flush is on its way.
    private let scheduled = Atomic<Bool>(false)

    public init(run: RunID, journal: any RunJournal, mask: SecretMask, health: StoreHealth) {
        self.run = run
        self.journal = journal
        self.mask = mask
        self.health = health
    }

    public func append(_ stream: LogLine.Stream, target: String?, phase: Phase?, text: String, at: Date) {
        let line = LogEntry(stream: stream, target: target, phase: phase, text: mask.apply(text), at: at)
        let full = pending.withLock { pending in
            pending.append(line)
            return pending.count >= RunLog.batchLines
        }
        if full {
            flush(at: at)
        } else if scheduled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged {
            Task.detached { [self] in
                try? await Task.sleep(for: RunLog.batchDelay)
                scheduled.store(false, ordering: .releasing)
                flush(at: at)
            }
        }
    }

    /// Writes what is waiting; true when nothing is left.
    @discardableResult
    public func flush(at now: Date) -> Bool {
        pending.withLock { pending in
            write(&pending, at: now)
            return pending.isEmpty
        }
    }

    public var waiting: Int { pending.withLock { $0.count } }

    private func write(_ pending: inout [LogEntry], at now: Date) {
        guard !pending.isEmpty else { return }
        do {
            try journal.log(run: run, pending)
            pending.removeAll(keepingCapacity: true)
            health.succeeded()
        } catch {
            health.failed(error, at: now)
        }
    }
}
