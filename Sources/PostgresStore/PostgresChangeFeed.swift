import Dispatch
import Rollout
import SQLStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Listens on `rollgate_changes` (migration postgres/0003: every log line and event insert
/// signals it at commit) on a connection and a thread of its own, and tells `onChange`. A lost
/// connection is made again a second later, and says `.everything` (signals sent meanwhile
/// are lost).
public final class PostgresChangeFeed: Sendable {
    public static let channel = "rollgate_changes"
    private let uri: String
    private let onChange: @Sendable (StoreChange) -> Void
    private let stopped = Atomic<Bool>(false)
    /// Who waits in `start` for the first LISTEN (or its failure).
    private let starting = Mutex<CheckedContinuation<Void, Never>?>(nil)
    /// A thread of its own (it blocks in poll(2)), not one of the cooperative pool's.
    private let queue = DispatchQueue(label: "rollgate.change-feed")

    public init(uri: String, onChange: @escaping @Sendable (StoreChange) -> Void) {
        self.uri = uri
        self.onChange = onChange
    }

    /// Starts listening; returns once the first LISTEN is in place (or failed: it keeps
    /// trying), without holding a thread of Swift's pool meanwhile.
    public func start() async {
        await withCheckedContinuation { waiting in
            starting.withLock { $0 = waiting }
            queue.async { self.listen() }
        }
    }

    private func attempted() {
        starting.withLock { waiting in
            waiting?.resume()
            waiting = nil
        }
    }

    public func stop() { stopped.store(true, ordering: .relaxed) }

    private func listen() {
        var first = true
        while !stopped.load(ordering: .relaxed) {
            do {
                let connection = try PGConnection(uri: uri)
                try connection.listen(PostgresChangeFeed.channel)
                attempted()
                if !first { onChange(.everything) }
                first = false
                while !stopped.load(ordering: .relaxed) {
                    for notice in try connection.notifications(waitingUpTo: .milliseconds(500)) {
                        if let change = PostgresChangeFeed.change(notice.payload) { onChange(change) }
                    }
                }
            } catch {
                attempted()
                first = false
                usleep(1_000_000)
            }
        }
    }

    static func change(_ payload: String) -> StoreChange? {
        if payload == "events" { return .events }
        if payload.hasPrefix("log "), let run = Int64(payload.dropFirst(4)) { return .log(run: run) }
        return nil
    }
}
