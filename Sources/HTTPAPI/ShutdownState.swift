import Rollout
import Synchronization

/// Whether the server takes writes: not while it shuts down, and not while it cannot show
/// that it holds its database (its lease on it not renewed in time, or taken over by another
/// rollgate). Writes are then answered 503.
public final class ShutdownState: Sendable {
    private let flag = Atomic<Bool>(false)
    private let hold = Mutex<LeaseGuard?>(nil)
    public init() {}
    public func begin() { flag.store(true, ordering: .relaxed) }
    public var isShuttingDown: Bool { flag.load(ordering: .relaxed) }
    /// Writes follow this hold on the database from now on.
    public func follow(_ guard: LeaseGuard) { hold.withLock { $0 = `guard` } }

    /// Why a write is refused now (HTTP 503), or nil.
    public var writeRefusal: (code: String, message: String)? {
        if isShuttingDown {
            return ("shutting_down", "rollgate is shutting down; retry in a moment (the next start takes writes again)")
        }
        if let hold = hold.withLock({ $0 }), !hold.mayAct {
            return hold.isLost
                ? ("database_taken_over", "another rollgate took this database over; this one takes no writes and is exiting")
                : ("database_not_held", "rollgate cannot renew its hold on the database; retry in a moment")
        }
        return nil
    }
}
