import Foundation
import Testing
import PostgresStore
import PostgresTesting
import Rollout
import SQLStore
import Synchronization

/// LISTEN/NOTIFY: a log line or an event committed through the store (by any replica) is
/// heard by every replica's feed; after the database comes back from a restart the feed
/// listens again and says that anything may have changed meanwhile.
@Suite(.serialized) struct ChangeFeedTests {
    final class Heard: Sendable {
        let changes = Mutex<[StoreChange]>([])
        func add(_ change: StoreChange) { changes.withLock { $0.append(change) } }
        func waitFor(_ change: StoreChange, seconds: Double = 10) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if changes.withLock({ $0.contains(change) }) { return true }
                usleep(20_000)
            }
            return false
        }
    }

    @Test func committedLinesAndEventsAreHeardAndARestartSaysEverything() async throws {
        let server = try PostgresServer()
        defer { server.remove() }
        let uri = try server.createDatabase()
        let store = try Store(postgres: uri, migrator: PostgresMigrator(directory: postgresMigrations))
        let heard = Heard()
        let feed = PostgresChangeFeed(uri: uri) { heard.add($0) }
        await feed.start()
        defer { feed.stop() }
        let t0 = Date()
        guard case .created(let run, _) = try store.enqueue(service: "web", version: "v1", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0) else {
            Issue.record("not queued"); return
        }
        #expect(heard.waitFor(.events), "the queued event")
        try store.log(run: run.id, [LogEntry(stream: .stdout, target: nil, phase: nil, text: "a", at: t0),
                                    LogEntry(stream: .stdout, target: nil, phase: nil, text: "b", at: t0)])
        #expect(heard.waitFor(.log(run: run.id)))
        #expect(heard.changes.withLock { $0.filter { $0 == .log(run: run.id) }.count } == 1, "a batch is one notification")
        // An uncommitted line is not heard.
        let before = heard.changes.withLock { $0.count }
        let other = try PGConnection(uri: uri)
        try other.execute("BEGIN")
        try other.execute("INSERT INTO log_lines (run_id, at, stream, text) VALUES ($1, 0, 'system', 'x')", [.integer(run.id)])
        usleep(300_000)
        #expect(heard.changes.withLock { $0.count } == before)
        try other.execute("ROLLBACK")
        server.stop()
        try server.start()
        #expect(heard.waitFor(.everything, seconds: 15), "listening again after the restart")
    }
}

/// Replicas writing the queue at once: a queued run another replica is superseding or
/// cancelling (its row locked in that write) is skipped by a claim, not waited for and not
/// taken; once that write commits it is gone from the queue.
@Suite struct ConcurrentQueueTests {
    @Test func aClaimSkipsARunAnotherReplicaIsChanging() throws {
        let uri = try postgres().createDatabase()
        let replica = try Store(postgres: uri, migrator: PostgresMigrator(directory: postgresMigrations), replica: "b")
        let t0 = Date()
        guard case .created(let queued, _) = try replica.enqueue(service: "web", version: "v1", reason: nil, requestedBy: "t", idempotencyKey: nil, at: t0) else {
            Issue.record("not queued"); return
        }
        // Another replica's write (a supersede, a cancel) holds the queued run's row.
        let other = try PGConnection(uri: uri)
        try other.execute("BEGIN")
        try other.execute("SELECT id FROM runs WHERE id = $1 FOR UPDATE", [.integer(queued.id)])
        let started = Date()
        #expect(try replica.claimNext(owner: LeaseOwner(host: "b", pid: 1, start: 1), lease: .seconds(15), at: t0) == nil)
        #expect(Date().timeIntervalSince(started) < 5, "skipped, not waited for")
        try other.execute("UPDATE runs SET status = 'cancelled', finished_at = 1, cancel_requested = 1 WHERE id = $1", [.integer(queued.id)])
        try other.execute("COMMIT")
        #expect(try replica.claimNext(owner: LeaseOwner(host: "b", pid: 1, start: 1), lease: .seconds(15), at: t0) == nil)
        #expect(try replica.run(queued.id)?.status == .cancelled)
    }

    /// Two replicas claiming the lapsed background duties at once: the second's claim waits
    /// for the first's row and then finds it held again, so exactly one holds them.
    @Test func aLapsedHoldClaimedByTwoAtOnceGoesToOne() throws {
        let uri = try postgres().createDatabase()
        let store = try Store(postgres: uri, migrator: PostgresMigrator(directory: postgresMigrations), replica: "b")
        let gone = LeaseOwner(host: "a", pid: 1, start: 1), first = LeaseOwner(host: "c", pid: 3, start: 3)
        let second = LeaseOwner(host: "b", pid: 2, start: 2)
        let other = try PGConnection(uri: uri)
        try other.execute("INSERT INTO server_holder (id, owner, started_at, expires_at) VALUES (1, $1, 0, 1)", [.text(gone.text)])
        // The first claim has written but not committed: it holds the row.
        try other.execute("BEGIN")
        try other.execute("""
            UPDATE server_holder SET owner = $1, started_at = rollgate_now_ms(), expires_at = rollgate_now_ms() + 60000 WHERE id = 1
            """, [.text(first.text)])
        let result = Mutex<Result<ServerHolder?, any Error>?>(nil)
        let claiming = Thread {
            let outcome = Result { try store.claimServer(owner: second, for: .seconds(15), isGone: { _ in false }) }
            result.withLock { $0 = outcome }
        }
        claiming.start()
        // Until the second claim waits on the row (it has read the lapsed hold by then).
        let watcher = try PGConnection(uri: uri)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let waiting = try watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()").rows.first?.int(0)
            if waiting == 1 { break }
            usleep(10_000)
        }
        try other.execute("COMMIT")
        while result.withLock({ $0 }) == nil && Date() < deadline.addingTimeInterval(10) { usleep(10_000) }
        let outcome = try #require(result.withLock { $0 })
        #expect(try outcome.get()?.owner == first, "the second claim is refused: the first holds the duties")
        #expect(try !store.renewServer(owner: second, for: .seconds(15)))
    }
}
