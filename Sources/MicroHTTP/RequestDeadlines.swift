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
///
/// A deadline alone does not keep slots free when an attacker opens more connections than
/// there are and opens each again when it is cut. So past `capacity` open connections (MHD
/// itself allows a reserve above it), each new connection closes the one that has been
/// receiving longest: a request that arrives at once is never that one, a dribble always is.
///
/// Each connection's clock lives in MHD's socket context: a request only stores two atomics
/// in it (no lock, no lookup); the lock is taken per connection, to open and close.
final class RequestDeadlines: Sendable {
    /// One connection's clock. `since` and `receiving` are written on the connection's MHD
    /// thread and read by the watcher; `shut` only under the deadlines' lock.
    final class Clock: Sendable {
        let socket: Int32
        let since: Atomic<UInt64>
        let receiving = Atomic<Bool>(true)
        /// Shut down by rollgate, waiting for MHD to close it (guarded by the deadlines' lock).
        let shut = Atomic<Bool>(false)

        init(socket: Int32, since: UInt64) {
            self.socket = socket
            self.since = Atomic(since)
        }

        /// The whole request is in: its handler's time is not the client's.
        func received() { receiving.store(false, ordering: .relaxed) }

        /// An answer was sent: the next request on this connection starts its own clock.
        func answered() {
            since.store(RequestDeadlines.now(), ordering: .relaxed)
            receiving.store(true, ordering: .relaxed)
        }

        var isReceiving: Bool { receiving.load(ordering: .relaxed) && !shut.load(ordering: .relaxed) }
    }

    struct Connections {
        var clocks: [UInt: Clock] = [:]
        /// Clocks not shut down yet.
        var live = 0
    }

    let limitNanoseconds: UInt64
    let capacity: Int
    /// Open connections by MHD's pointer. A clock leaves in MHD's "closed" notification, which
    /// comes before MHD closes the socket, and shutdowns happen under the same lock: a socket
    /// number is never shut down after MHD has let it go.
    private let open = Mutex(Connections())
    private let stopped = Atomic<Bool>(false)
    /// Requests cut at their deadline or to make room (for tests and the log).
    let cut = Atomic<Int>(0)

    init(limitSeconds: UInt32, capacity: Int) {
        limitNanoseconds = UInt64(max(1, limitSeconds)) * 1_000_000_000
        self.capacity = capacity
    }

    /// The connections MHD may hold: a reserve above `capacity`, so a new one gets in and
    /// the longest-receiving one goes.
    static func reserve(for capacity: UInt32) -> UInt32 { max(16, capacity / 8) }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// A new connection's clock (to keep in MHD's socket context; the deadlines hold it until
    /// `closed`). Past `capacity`, the connection receiving longest is shut to make room.
    func opened(_ connection: OpaquePointer, socket: Int32) -> Clock {
        let key = UInt(bitPattern: connection)
        let clock = Clock(socket: socket, since: RequestDeadlines.now())
        open.withLock { open in
            open.clocks[key] = clock
            open.live += 1
            guard open.live > capacity else { return }
            var oldest: (key: UInt, since: UInt64)?
            for (other, held) in open.clocks where other != key && held.isReceiving {
                let since = held.since.load(ordering: .relaxed)
                if oldest == nil || since < oldest!.since { oldest = (other, since) }
            }
            if let oldest { shut(oldest.key, in: &open) }
        }
        return clock
    }

    func closed(_ connection: OpaquePointer) {
        open.withLock { open in
            guard let clock = open.clocks.removeValue(forKey: UInt(bitPattern: connection)) else { return }
            if !clock.shut.load(ordering: .relaxed) { open.live -= 1 }
        }
    }

    /// Shuts down every connection whose request is past its deadline; returns how many.
    @discardableResult
    func sweep(at now: UInt64 = RequestDeadlines.now()) -> Int {
        open.withLock { open in
            let late = open.clocks.filter { $0.value.isReceiving && now &- $0.value.since.load(ordering: .relaxed) > limitNanoseconds }
            for key in late.keys { shut(key, in: &open) }
            return late.count
        }
    }

    /// Called under the lock: MHD has not closed the socket while its clock is here.
    private func shut(_ key: UInt, in open: inout Connections) {
        guard let clock = open.clocks[key], !clock.shut.load(ordering: .relaxed), clock.socket >= 0 else { return }
        shutdown(clock.socket, Int32(SHUT_RDWR))   // MHD sees the end and closes it
        clock.shut.store(true, ordering: .relaxed)
        open.live -= 1
        cut.add(1, ordering: .relaxed)
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
