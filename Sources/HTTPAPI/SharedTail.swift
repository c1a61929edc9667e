import Configuration
import WireFormat
import Rollout
import Synchronization

/// One SSE frame, formatted once for every stream that sends it.
struct StreamFrame: Sendable {
    let seq: Int64
    let bytes: [UInt8]
}

/// What many streams follow from one source (the event log, or one run's log): read from
/// the store at most every 150 ms by one of its readers for all of them, kept formatted in
/// memory (the last 2,000 frames). Hundreds of streams on one run cost one query per poll,
/// not one each.
final class SharedTail: Sendable {
    /// New frames after a cursor, and the closing frame once the source has ended and
    /// everything before it was read.
    struct Batch {
        var frames: [StreamFrame]
        var end: [UInt8]?
    }

    /// Reads what follows `after` from the store: frames, and the end frame when there is
    /// nothing more and never will be.
    typealias Fetch = @Sendable (_ after: Int64) throws -> (frames: [StreamFrame], end: [UInt8]?)

    private struct State {
        var frames: [StreamFrame] = []
        /// Everything after this seq is in `frames`.
        var floor: Int64
        var fetchedAt: ContinuousClock.Instant?
        var fetching = false
        var end: [UInt8]?
    }

    private let state: Mutex<State>
    private let fetch: Fetch
    /// How long what is held counts as new enough (tests set 0: every read fetches).
    private let freshness: Duration
    static let keep = 2000

    /// Something new was committed to this source (the change feed said so): the next read
    /// fetches, however fresh what is held.
    func changed() {
        state.withLock { $0.fetchedAt = nil }
    }

    init(floor: Int64, freshness: Duration = .milliseconds(150), fetch: @escaping Fetch) {
        state = Mutex(State(floor: floor))
        self.freshness = freshness
        self.fetch = fetch
    }

    /// The frames after `cursor`, refreshed first if they are older than 150 ms (one caller
    /// fetches, the others use what is held); nil when `cursor` is older than what is held,
    /// and the caller reads the store itself.
    func read(after cursor: Int64) throws -> Batch? {
        try refreshIfStale()
        return state.withLock { s in
            guard cursor >= s.floor else { return nil }
            // Frames are in seq order: find the first after the cursor.
            var low = 0, high = s.frames.count
            while low < high {
                let middle = (low + high) / 2
                if s.frames[middle].seq <= cursor { low = middle + 1 } else { high = middle }
            }
            return Batch(frames: Array(s.frames[low...]), end: s.end)
        }
    }

    private func refreshIfStale() throws {
        let after: Int64? = state.withLock { s in
            if s.fetching || s.end != nil { return nil }
            if let at = s.fetchedAt, ContinuousClock.now - at < freshness { return nil }
            s.fetching = true
            return s.frames.last?.seq ?? s.floor
        }
        guard let after else { return }
        let fetched: (frames: [StreamFrame], end: [UInt8]?)
        do {
            fetched = try fetch(after)
        } catch {
            state.withLock { $0.fetching = false; $0.fetchedAt = .now }
            throw error
        }
        state.withLock { s in
            s.fetching = false
            s.fetchedAt = .now
            s.frames += fetched.frames
            s.end = fetched.end
            if s.frames.count > SharedTail.keep {
                let drop = s.frames.count - SharedTail.keep
                s.floor = s.frames[drop - 1].seq
                s.frames.removeFirst(drop)
            }
        }
    }
}

/// The shared tails of the open streams: the event log's, and each followed run's log while
/// at least one stream follows it.
package final class StreamTails: Sendable {
    private let events = Mutex<SharedTail?>(nil)
    private let logs = Mutex<[Int64: (tail: SharedTail, followers: Int)]>([:])
    private let woken = Atomic<Bool>(false)

    /// How long a tail's frames count as new enough: 150 ms when only reading can tell, 5 s
    /// (a safety net) when a change feed says what was committed.
    var freshness: Duration { woken.load(ordering: .relaxed) ? .seconds(5) : .milliseconds(150) }

    /// From now on a change feed tells what changed (`changed`): tails stop reading on a timer.
    package func wokenByChanges() { woken.store(true, ordering: .relaxed) }

    /// What the change feed heard: the tails it concerns read again at their next ask.
    package func changed(_ change: StoreChange) {
        switch change {
        case .events:
            events.withLock { $0?.changed() }
        case .log(let run):
            logs.withLock { $0[run]?.tail.changed() }
        case .everything:
            events.withLock { $0?.changed() }
            logs.withLock { logs in for entry in logs.values { entry.tail.changed() } }
        }
    }

    func eventLog(_ make: () throws -> SharedTail) rethrows -> SharedTail {
        try events.withLock { tail in
            if let tail { return tail }
            let made = try make()
            tail = made
            return made
        }
    }

    /// The run's tail, made on first use; `release` when the stream ends.
    func follow(run: Int64, _ make: () throws -> SharedTail) rethrows -> SharedTail {
        try logs.withLock { logs in
            if let entry = logs[run] {
                logs[run] = (entry.tail, entry.followers + 1)
                return entry.tail
            }
            let made = try make()
            logs[run] = (made, 1)
            return made
        }
    }

    func release(run: Int64) {
        logs.withLock { logs in
            guard let entry = logs[run] else { return }
            logs[run] = entry.followers > 1 ? (entry.tail, entry.followers - 1) : nil
        }
    }

    /// How many runs have a shared tail now (for tests).
    var followedRuns: Int { logs.withLock { $0.count } }
}
