import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The request deadline: a request's line, headers and body must all arrive within `limit`,
/// however they trickle in (MHD's own timeout counts only silence, so one byte every few
/// seconds held a connection forever). The clock starts when a connection opens and again
/// when an answer has been sent (the next request on a kept-alive connection); it stops once
/// the whole request is in (a handler or a live stream then takes as long as it takes).
/// A watcher thread shuts the socket of a request past its deadline down; MHD sees the
/// connection end and closes it on its own thread.
final class RequestDeadlines: Sendable {
    struct Entry {
        let socket: Int32
        var since: UInt64
        var receiving: Bool
    }

    let limitNanoseconds: UInt64
    /// Open connections by MHD's pointer. An entry leaves in MHD's "closed" notification,
    /// which comes before MHD closes the socket, and shutdowns happen under the same lock: a
    /// socket number is never shut down after MHD has let it go.
    private let open = Mutex<[UInt: Entry]>([:])
    private let stopped = Atomic<Bool>(false)
    /// Requests cut at their deadline (for tests and the log).
    let cut = Atomic<Int>(0)

    init(limitSeconds: UInt32) {
        limitNanoseconds = UInt64(max(1, limitSeconds)) * 1_000_000_000
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    func opened(_ connection: OpaquePointer, socket: Int32) {
        guard socket >= 0 else { return }
        let entry = Entry(socket: socket, since: RequestDeadlines.now(), receiving: true)
        open.withLock { $0[UInt(bitPattern: connection)] = entry }
    }

    func closed(_ connection: OpaquePointer) {
        _ = open.withLock { $0.removeValue(forKey: UInt(bitPattern: connection)) }
    }

    /// The whole request is in: its handler's time is not the client's.
    func received(_ connection: OpaquePointer) {
        open.withLock { entries in
            let key = UInt(bitPattern: connection)
            if entries[key]?.receiving == true { entries[key]?.receiving = false }
        }
    }

    /// An answer was sent: the next request on this connection starts its own clock.
    func answered(_ connection: OpaquePointer) {
        let now = RequestDeadlines.now()
        open.withLock { entries in
            let key = UInt(bitPattern: connection)
            guard entries[key] != nil else { return }
            entries[key]!.receiving = true
            entries[key]!.since = now
        }
    }

    /// Shuts down every connection whose request is past its deadline; returns how many.
    @discardableResult
    func sweep(at now: UInt64 = RequestDeadlines.now()) -> Int {
        open.withLock { entries in
            var count = 0
            for (key, entry) in entries where entry.receiving && now &- entry.since > limitNanoseconds {
                shutdown(entry.socket, Int32(SHUT_RDWR))
                entries[key]!.receiving = false   // once is enough; MHD closes it next
                count += 1
            }
            if count > 0 { cut.add(count, ordering: .relaxed) }
            return count
        }
    }

    /// Sweeps every quarter second on a thread of its own until `stop()`.
    func start() {
        let watcher = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { raw in
            let deadlines = Unmanaged<RequestDeadlines>.fromOpaque(raw!).takeRetainedValue()
            while !deadlines.stopped.load(ordering: .relaxed) {
                deadlines.sweep()
                usleep(250_000)
            }
            return nil
        }, watcher.toOpaque())
        if started == 0 { pthread_detach(thread) } else { watcher.release() }
    }

    func stop() { stopped.store(true, ordering: .relaxed) }
}
