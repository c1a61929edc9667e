import Dispatch

/// Where blocking database work runs: threads of its own, never Swift's cooperative pool (2
/// threads on 2 cores, which a busy wait on SQLite's write lock would take from every task)
/// nor libmicrohttpd's threads (which answer `/healthz` and reads). At most `width` calls run
/// at once; the rest wait without holding a thread.
public final class BlockingWork: Sendable {
    public let width: Int
    private let slots: Slots

    public init(width: Int = 8) {
        self.width = max(1, width)
        slots = Slots(free: self.width)
    }

    /// Runs `body` on a thread of its own and returns what it returned or threw.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        await slots.acquire()
        defer { Task { await slots.release() } }
        return try await withCheckedThrowingContinuation { continuation in
            // A serial queue of its own targets an overcommitting root queue: it gets a thread
            // even while the others block (the global concurrent queues are as wide as the
            // CPUs on Linux and also run Swift's tasks).
            DispatchQueue(label: "rollgate.blocking").async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// A counting semaphore that suspends instead of blocking.
    private actor Slots {
        var free: Int
        var waiting: [CheckedContinuation<Void, Never>] = []

        init(free: Int) { self.free = free }

        func acquire() async {
            if free > 0 { free -= 1; return }
            await withCheckedContinuation { waiting.append($0) }
        }

        func release() {
            if waiting.isEmpty { free += 1 } else { waiting.removeFirst().resume() }
        }
    }
}

extension Optional where Wrapped == BlockingWork {
    /// `body` on the work's own threads when there is one, else where it is called (tests on
    /// a store no one else locks).
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        guard let work = self else { return try body() }
        return try await work.run(body)
    }
}
