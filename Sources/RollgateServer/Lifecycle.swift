import HTTPAPI
import Integrations
import Logging
import MicroHTTP
import PostgresStore
import Rollout
import SQLiteStore
import SQLStore
import ServiceLifecycle
import Synchronization

/// The server's long-running parts as services of one group (swift-service-lifecycle),
/// started together once the database is held and the port bound, and stopped one by one
/// in reverse of this order on graceful shutdown.
extension App {
    func longRunningParts(started: Started) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        var parts: [(any Service, String)] = []
        // Given back last: held while everything else stops.
        if store.dialect == .postgres {
            parts.append((BackgroundDuties(app: self), "background duties"))
        } else {
            parts.append((DatabaseHold(app: self), "database hold"))
        }
        // Reads and the page go on answering while the rolls stop.
        parts.append((HTTPService(server: server), "http"))
        if let changeFeed {
            started.expect("change feed")
            parts.append((ChangeFeedService(feed: changeFeed, started: started), "change feed"))
        }
        parts.append((DispatcherService(dispatcher: dispatcher, started: started), "dispatcher"))
        // The duties: each pass only while this process may act (`hold`).
        let notifier = Notifier(outbox: StorePorts(store: store, work: blocking), config: config, http: outbound, clock: clock,
                                logger: logger, telemetry: telemetry, holding: hold)
        parts.append((Periodic(ticks: clock.ticks(every: .milliseconds(500), atOnce: true)) { await notifier.pass() }, "notifier"))
        parts.append((Periodic(ticks: clock.ticks(every: .seconds(60), atOnce: true)) { await self.putBackHealthChecks() },
                         "health checks put back"))
        if config.retention.keepRuns != nil || config.retention.keepLogs != nil {
            parts.append((Periodic(ticks: clock.ticks(every: .seconds(600), atOnce: true)) { await self.prune() }, "pruner"))
        }
        // Stopped first: from then on writes are answered 503.
        parts.append((WriteGate(shutdown: shutdown), "write gate"))
        return parts.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0.0, serviceName: $0.1) }
    }

    /// Puts back the health check of a group rollgate changed for a run that is over (a
    /// crash between the change and the run's end); a run still running puts its own back
    /// when it ends.
    func putBackHealthChecks() async {
        guard hold.mayAct else { return }
        let store = self.store, blocking = self.blocking, services = self.services
        let results = await HealthCheckRestorer(ledger: store, work: blocking).putBackWhereRunsEnded(
            isRunning: { id in (try? await blocking.run { try store.run(id) })?.status == .running },
            group: { services.loadBalancer(for: $0)?.healthCheckTuning })
        for result in results {
            switch result {
            case .putBack(let change):
                logger.info("put a target group's health check back after its run ended", metadata: [
                    "target_group": "\(change.targetGroup)", "run.id": "\(change.run)", "settings": "\(change.original)"])
            case .failed(let change, let failure):
                logger.error("cannot put a target group's health check back", metadata: ["target_group": "\(change.targetGroup)", "error": "\(failure)"])
            case .notConfigured(let change):
                logger.error("rollgate changed the health check of a target group no longer configured; put it back by hand",
                             metadata: ["target_group": "\(change.targetGroup)", "original": "\(change.original)"])
            case .leftToItsRun: break
            }
        }
    }

    /// Removes what `retention:` no longer keeps: in batches of one short transaction each on
    /// the store's threads, the writer free between them (a deploy waits for one batch at
    /// most), then on SQLite the write-ahead log truncated and free pages given back.
    func prune() async {
        let store = self.store, retention = config.retention, clock = self.clock, hold = self.hold, blocking = self.blocking
        var total = Store.Pruned(runs: 0, logLines: 0, done: false)
        // Only the process that holds the database (or the duties) prunes it.
        while !total.done && !Task.isCancelled && hold.mayAct {
            let now = clock.now
            do {
                total = total + (try await blocking.run { try store.pruneBatch(retention, at: now) })
            } catch {
                logger.error("cannot prune old runs", metadata: ["error": "\(error)"])
                break
            }
            // Other writers (a deploy, a roll's lines) get the writer between batches.
            try? await clock.sleep(for: .milliseconds(20))
        }
        guard total.runs > 0 || total.logLines > 0 else { return }
        logger.info("pruned", metadata: ["runs": "\(total.runs)", "log_lines": "\(total.logLines)"])
        // SQLite's file gives its free pages back; PostgreSQL's autovacuum does that itself.
        guard hold.mayAct, store.sqlite != nil else { return }
        let started = clock.uptime
        let given = await store.giveSpaceBack(work: blocking) {
            // Other writers get the writer between steps.
            try? await clock.sleep(for: .milliseconds(20))
            return !Task.isCancelled && hold.mayAct
        }
        if let failure = given.rewriteFailure {
            logger.error("cannot rewrite the database to give free pages back", metadata: ["error": "\(failure)"])
        }
        logger.info("compacted", metadata: ["rewritten": "\(given.rewritten)", "steps": "\(given.steps)",
                                            "seconds": "\(Int((clock.uptime - started).seconds.rounded()))",
                                            "file": "\(given.fileBytes / 1_048_576) MB"])
    }
}

/// What `App.start` waits for before it returns: the dispatcher (and on PostgreSQL the
/// change feed) started.
final class Started: Sendable {
    private let state = Mutex<(pending: Set<String>, waiting: CheckedContinuation<Void, Never>?)>((["dispatcher"], nil))

    func expect(_ part: String) { state.withLock { _ = $0.pending.insert(part) } }

    func done(_ part: String) {
        let waiting = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.pending.remove(part)
            guard state.pending.isEmpty, let waiting = state.waiting else { return nil }
            state.waiting = nil
            return waiting
        }
        waiting?.resume()
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.pending.isEmpty { return true }
                state.waiting = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }
}

/// Repeats `body` on each tick until graceful shutdown; a pass in progress then is cancelled
/// (a notification in flight is sent again after the restart).
struct Periodic: Service {
    let ticks: Ticks
    let body: @Sendable () async -> Void

    func run() async throws {
        for await _ in ticks.cancelOnGracefulShutdown() {
            await cancelWhenGracefulShutdown { await body() }
        }
    }
}

/// SQLite: the whole database is this process's (claimed in `App.start`). Renewed every
/// `lease.renewEvery`; past its acting window without a renewal, writes are refused and
/// nothing is sent; lost (another process took over after the lease ran out: this one was
/// stopped, or cut off from the database) every roll here stops at once, hooks included,
/// and `onDatabaseLost` is told (the process exits). Given back at the end of shutdown,
/// with the write-ahead log moved into the database file.
struct DatabaseHold: Service {
    let app: App

    func run() async throws {
        let store = app.store, owner = app.owner, lease = app.lease, blocking = app.blocking, clock = app.clock
        for await _ in clock.ticks(every: lease.renewEvery).cancelOnGracefulShutdown() {
            let asked = clock.uptime
            do {
                let duration = lease.duration
                if try await blocking.run({ try store.renewServer(owner: owner, for: duration) }) {
                    app.hold.renewed(askedAt: asked)
                    app.health.succeeded()
                } else {
                    app.logger.critical("another rollgate took this database over; stopping every roll and hook here, taking no writes, and exiting")
                    app.hold.lose()
                    app.shutdown.begin()
                    await app.dispatcher.loseAll()
                    app.lostHandlers.callAll()
                    try? await gracefulShutdown()
                    return
                }
            } catch {
                app.health.failed(error, at: clock.now)
                app.logger.error("cannot renew the hold on the database", metadata: ["error": "\(error)"])
            }
        }
        do {
            try store.releaseServer(owner: owner)
            try store.checkpoint()
        } catch {
            app.logger.error("cannot release the database cleanly; the next start takes over once the lease expires",
                             metadata: ["error": "\(error)"])
        }
    }
}

/// PostgreSQL: every replica serves the API, the page and the streams and claims runs (each
/// fenced by its own lease); the background duties (notifications, pruning, health checks
/// put back) go to the one replica that holds the database's `server_holder` lease. Claimed
/// when nobody holds it or its holder's lease lapsed, renewed while held; losing it only
/// stops the duties. Given back at the end of shutdown.
struct BackgroundDuties: Service {
    let app: App

    func run() async throws {
        let store = app.store, owner = app.owner, lease = app.lease, blocking = app.blocking, clock = app.clock
        let identity = app.identity, logger = app.logger
        var holding = false
        for await _ in clock.ticks(every: lease.renewEvery, atOnce: true).cancelOnGracefulShutdown() {
            let asked = clock.uptime
            let duration = lease.duration
            do {
                if holding {
                    holding = try await blocking.run { try store.renewServer(owner: owner, for: duration) }
                    if !holding { logger.notice("another replica holds the background duties now") }
                } else {
                    holding = try await blocking.run { try store.claimServer(owner: owner, for: duration, isGone: { identity.isGone($0) }) } == nil
                    if holding { logger.info("this replica holds the background duties (notifications, pruning, health checks put back)") }
                }
                if holding { app.hold.renewed(askedAt: asked) }
            } catch {
                logger.error("cannot renew the background duties", metadata: ["error": "\(error)"])
            }
            // One account's AWS limit, several replicas: each spends a share of the budget by the
            // runs it holds (at least one's worth: an idle replica still asks for its pages).
            do {
                let weight = app.dispatcher.held.now.count
                let share = try await blocking.run { try store.replicaAlive(owner: owner, weight: weight, window: duration) }
                if abs(share.fraction - app.services.awsBudgets.share) > 0.001 {
                    logger.info("this replica's share of the AWS call budget is \(Int((share.fraction * 100).rounded()))% now (\(share.replicas) replica(s) alive, weight \(share.weight) of \(share.totalWeight))")
                    await app.services.awsBudgets.share(share.fraction)
                }
            } catch {
                logger.warning("cannot say this replica is alive; its AWS call budget share stays as it was", metadata: ["error": "\(error)"])
            }
        }
        try? store.replicaGone(owner: owner)
        if holding {
            do { try store.releaseServer(owner: owner) } catch {
                logger.error("cannot give the background duties back; another replica takes them once the lease lapses",
                             metadata: ["error": "\(error)"])
            }
        }
    }
}

/// HTTP: listening since `App.start` (a port in use fails before anything else starts);
/// stopped once the rolls have.
struct HTTPService: Service {
    let server: HTTPServer

    func run() async throws {
        try? await gracefulShutdown()
        await server.stop()
    }
}

/// PostgreSQL's LISTEN/NOTIFY: what another replica commits wakes this one's streams.
struct ChangeFeedService: Service {
    let feed: PostgresChangeFeed
    let started: Started

    func run() async throws {
        await feed.start()
        started.done("change feed")
        try? await gracefulShutdown()
        feed.stop()
    }
}

/// The dispatcher: takes over runs left `running` by a process that is gone, then rolls
/// queued runs; on shutdown the rolls in hand stop at their next safe point.
struct DispatcherService: Service {
    let dispatcher: Dispatcher
    let started: Started

    func run() async throws {
        await dispatcher.start()
        started.done("dispatcher")
        try? await gracefulShutdown()
        await dispatcher.stop()
    }
}

/// Refuses writes (503 `shutting_down`) from the moment shutdown begins.
struct WriteGate: Service {
    let shutdown: ShutdownState

    func run() async throws {
        try? await gracefulShutdown()
        shutdown.begin()
    }
}
