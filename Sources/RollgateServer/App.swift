import Configuration
import HTTPAPI
import Hooks
import Integrations
import LoadBalancing
import Monitoring
import Page
import WireFormat
import Logging
import Synchronization
import MicroHTTP
import Outbound
import Rollout
import PostgresStore
import SQLiteStore
import SQLStore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where rollgate finds its migrations and status page when not told: beside the binary's
/// source checkout (`.build/debug/rollgate` -> repo), or the working directory.
public enum InstallLayout {
    public static func locate(_ name: String, environmentKey: String, environment: [String: String],
                              executablePath: String?) -> String {
        if let explicit = environment[environmentKey], !explicit.isEmpty { return explicit }
        var candidates = ["./" + name]
        if let executablePath {
            var directory = executablePath
            for _ in 0..<4 {
                guard let slash = directory.lastIndex(of: "/") else { break }
                directory = String(directory[..<slash])
                candidates.append(directory + "/" + name)
                candidates.append(directory + "/share/rollgate/" + name)
            }
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? "./" + name
    }
}

public struct DatabaseHeld: Error, CustomStringConvertible {
    public let database: String
    public let holder: ServerHolder
    public var description: String {
        "\(database) is served by \(holder.owner) since \(Timestamp.format(holder.startedAt)) (lease until \(Timestamp.format(holder.expiresAt))); "
            + "two servers on one database would run runs twice. Stop that one first (the next start resumes its runs in hand), or give this one a --database of its own"
    }
}

/// The running server: store, services, dispatcher and HTTP, started in that order and
/// stopped in reverse.
public final class App: Sendable {
    public let config: Config
    public let store: Store
    public let dispatcher: Dispatcher
    public let server: HTTPServer
    /// The API's routes, callable without a socket.
    public let router: Router
    /// The API behind the router (tests reach its parts).
    let api: API
    public let owner: LeaseOwner
    public let health: StoreHealth
    public let shutdown = ShutdownState()
    public let telemetry = Telemetry()
    let services: ServiceDirectory
    let logger: Logger
    let clock: any RolloutClock
    let identity: ProcessIdentity
    let lease: LeaseTerms
    let outbound: any OutboundHTTP
    /// This process's own view of its hold on the database: the notifier, the pruner and HTTP
    /// writes act only while it allows.
    let hold: LeaseGuard
    /// PostgreSQL's LISTEN/NOTIFY of new log lines and events; nil on SQLite.
    let changeFeed: PostgresChangeFeed?
    /// Threads of the store's own: every database call of the rolls, the dispatcher, the
    /// hold's renewal, the pruner and the notifier waits there, never on Swift's pool.
    let blocking = BlockingWork(width: 8)
    private let background = Mutex<[Task<Void, Never>]>([])
    private let lostHandlers = LostHandlers()

    public init(config: Config, migrationsDirectory: String, publicDirectory: String,
                environment: [String: String], logger: Logger, clock: any RolloutClock = SystemClock(),
                listen: ListenAddress? = nil, lease: LeaseTerms? = nil, outbound: any OutboundHTTP = CurlHTTP()) throws {
        self.config = config
        self.outbound = outbound
        self.logger = logger
        self.clock = clock
        let lease = lease ?? LeaseTerms(lease: config.lease)
        self.lease = lease
        // SQLite: the hold on the whole database, this process's from the start. PostgreSQL:
        // the background duties (notifications, pruning, health checks put back), held by one
        // replica at a time and this one's only once it claims them.
        let onPostgres = PostgresURI.isPostgres(config.database)
        hold = LeaseGuard(terms: lease, clock: clock, askedAt: onPostgres ? clock.uptime - lease.actingWindow : clock.uptime)
        identity = ProcessIdentity()
        owner = identity.current
        let health = StoreHealth()
        self.health = health
        let metrics = telemetry.metrics
        telemetry.prepare(services: config.services.map(\.name))
        let replica = config.name ?? identity.host
        if onPostgres {
            store = try Store(postgres: config.database, migrator: PostgresMigrator(directory: migrationsDirectory + "/postgres"), now: clock.now,
                              metrics: metrics, replica: replica)
        } else {
            store = try Store(path: config.database, migrator: Migrator(directory: migrationsDirectory), now: clock.now, metrics: metrics,
                              leaseClock: clock, replica: replica)
        }
        let services = try ServiceDirectory(config: config, store: store, clock: clock, environment: environment, http: outbound, health: health,
                                            metrics: metrics)
        self.services = services
        let hooks = HookEnvironment(server: environment, config: config)
        // The rolls' writes run on threads of their own: a busy wait on the write lock never
        // holds one of Swift's cooperative threads (the page and /api/v1/services run there).
        let blocking = self.blocking
        let context = RollContext(lease: lease, health: health, mask: hooks.mask(config: config),
                                  observer: services.cache, metrics: metrics, blocking: blocking, healthChecks: store)
        let store = self.store
        let shutdownAllowance = config.shutdownTimeout
        dispatcher = Dispatcher(
            queue: store, clock: clock, logger: logger, owner: owner, lease: lease, liveness: identity,
            recovery: Recovery(queue: store, clock: clock, executor: HookRunner(baseEnvironment: [:])),
            health: health, work: blocking) { run in
                guard let held = run.lease else { return .failure(RunFailure(.unexpected, "run \(run.id) was handed over without its lease")) }
                // Every write the roll makes into its run is fenced by this holding of it.
                return services.roll(for: run, hooks: hooks, shutdownAllowance: shutdownAllowance, journal: store.fenced(by: held),
                                     clock: clock, logger: logger, context: context)
            }
        let dispatcher = self.dispatcher
        let api = API(store: store, config: config, services: services, clock: clock,
                      wakeDispatcher: { Task { await dispatcher.wake() } },
                      statusPage: StatusPage(files: StaticFiles(root: config.publicDir ?? publicDirectory), store: store,
                                             config: config, services: services, clock: clock),
                      health: health, shutdown: shutdown, held: dispatcher.held,
                      rateLimiter: WriteRateLimiter(perSecond: config.writeRate.perSecond, burst: config.writeRate.burst),
                      telemetry: telemetry, logger: logger)
        let address = listen ?? config.listen
        self.api = api
        router = api.router
        // On PostgreSQL, what another replica commits wakes this one's streams (LISTEN/NOTIFY).
        if onPostgres {
            let tails = api.tails
            tails.wokenByChanges()
            changeFeed = PostgresChangeFeed(uri: config.database) { tails.changed($0) }
        } else {
            changeFeed = nil
        }
        let limits = config.connections
        server = HTTPServer(configuration: HTTPServerConfiguration(
            host: address.host, port: address.port,
            connectionTimeoutSeconds: UInt32(max(1, limits.idleTimeout.components.seconds)),
            connectionLimit: limits.total, connectionsPerAddress: limits.perAddress,
            requestTimeoutSeconds: UInt32(clamping: max(1, limits.requestTimeout.components.seconds)), tls: config.tls), router: router)
    }

    /// Claims the database (refusing if another live rollgate serves it), listens (a port in
    /// use fails before anything is touched), then takes over runs a previous process left
    /// `running` and resumes them, then takes queued runs.
    public func start() async throws {
        if store.dialect == .postgres {
            try await startReplica()
            return
        }
        let identity = self.identity
        let holder: ServerHolder?
        let asked = clock.uptime
        do {
            holder = try store.claimServer(owner: owner, for: lease.duration, isGone: { identity.isGone($0) })
        } catch {
            throw SQLiteEngine.explainUnwritable(error, path: config.database)
        }
        if let holder { throw DatabaseHeld(database: config.database, holder: holder) }
        hold.renewed(askedAt: asked)
        shutdown.follow(hold)   // from now on, writes only while the hold is this process's
        do {
            try server.start()
        } catch {
            try? store.releaseServer(owner: owner)
            throw error
        }
        await startWork(keeping: keepLease())
    }

    /// The work of a serving process once it listens: the background tasks (`keeper` holds
    /// what `hold` stands for: the database on SQLite, the duties on PostgreSQL, which gate
    /// pruning, the health checks' put-back and notifications), then the dispatcher.
    private func startWork(keeping keeper: Task<Void, Never>) async {
        let notifier = Notifier(store: store, config: config, http: outbound, clock: clock, logger: logger,
                                telemetry: telemetry, holding: hold, blocking: blocking)
        background.withLock { $0 = [keeper, prune(), putBackHealthChecks(), Task { await notifier.run() }] }
        await dispatcher.start()
    }

    /// On PostgreSQL every replica serves the API, the page and the streams, and claims runs
    /// (each run fenced by its own lease); the background duties go to whichever replica
    /// holds the database's `server_holder` lease, taken over by another once it lapses.
    private func startReplica() async throws {
        await changeFeed?.start()
        try server.start()
        await startWork(keeping: keepDuties())
    }

    /// Claims the replicas' background duties when nobody holds them (or their holder's lease
    /// lapsed), and renews them while this replica does. Losing them only stops the duties:
    /// this replica goes on serving and rolling.
    private func keepDuties() -> Task<Void, Never> {
        let store = self.store, owner = self.owner, clock = self.clock, lease = self.lease, hold = self.hold
        let logger = self.logger, blocking = self.blocking, identity = self.identity
        return Task {
            var holding = false
            while !Task.isCancelled {
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
                    if holding { hold.renewed(askedAt: asked) }
                } catch {
                    logger.error("cannot renew the background duties", metadata: ["error": "\(error)"])
                }
                try? await clock.sleep(for: lease.renewEvery)
            }
        }
    }

    /// Called once if another rollgate takes this database over (this one must then exit).
    public func onDatabaseLost(_ body: @escaping @Sendable () -> Void) {
        lostHandlers.add(body)
    }

    final class LostHandlers: Sendable {
        private let handlers = Mutex<[@Sendable () -> Void]>([])
        func add(_ body: @escaping @Sendable () -> Void) { handlers.withLock { $0.append(body) } }
        func callAll() { for handler in handlers.withLock({ $0 }) { handler() } }
    }

    /// Renews this process's hold on the database. Past its acting window without a renewal,
    /// writes are refused and nothing is sent; losing it (another process took over after
    /// the lease ran out: this one was stopped, or cut off from the database) stops every roll
    /// here at once, hooks included, and tells `onDatabaseLost` to exit.
    private func keepLease() -> Task<Void, Never> {
        let store = self.store, owner = self.owner, clock = self.clock, lease = self.lease, hold = self.hold
        let health = self.health, logger = self.logger, dispatcher = self.dispatcher, shutdown = self.shutdown
        let lostHandlers = self.lostHandlers, blocking = self.blocking
        return Task {
            while !Task.isCancelled {
                try? await clock.sleep(for: lease.renewEvery)
                if Task.isCancelled { return }
                let asked = clock.uptime
                do {
                    let duration = lease.duration
                    if try await blocking.run({ try store.renewServer(owner: owner, for: duration) }) {
                        hold.renewed(askedAt: asked)
                        health.succeeded()
                    } else {
                        logger.critical("another rollgate took this database over; stopping every roll and hook here, taking no writes, and exiting")
                        hold.lose()
                        shutdown.begin()
                        await dispatcher.loseAll()
                        lostHandlers.callAll()
                        return
                    }
                } catch {
                    health.failed(error, at: clock.now)
                    logger.error("cannot renew the hold on the database", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Puts back the health check of a group rollgate changed for a run that is over (a
    /// crash between the change and the run's end), at start and every minute; a run still
    /// running puts its own back when it ends.
    private func putBackHealthChecks() -> Task<Void, Never> {
        let store = self.store, clock = self.clock, logger = self.logger, hold = self.hold, blocking = self.blocking
        let services = self.services
        return Task {
            while !Task.isCancelled {
                if hold.mayAct {
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
                try? await clock.sleep(for: .seconds(60))
            }
        }
    }

    /// Removes what `retention:` no longer keeps, at start and every 10 minutes: in batches of
    /// one short transaction each on the store's threads, the writer free between them (a
    /// deploy waits for one batch at most), then the write-ahead log truncated and free pages
    /// given back.
    private func prune() -> Task<Void, Never> {
        let store = self.store, retention = config.retention, clock = self.clock, logger = self.logger, hold = self.hold
        let blocking = self.blocking
        return Task {
            guard retention.keepRuns != nil || retention.keepLogs != nil else { return }
            while !Task.isCancelled {
                var total = Store.Pruned(runs: 0, logLines: 0, done: false)
                while !total.done && !Task.isCancelled {
                    // Only the process that holds the database prunes it.
                    guard hold.mayAct else { try? await clock.sleep(for: .seconds(1)); continue }
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
                if total.runs > 0 || total.logLines > 0 {
                    logger.info("pruned", metadata: ["runs": "\(total.runs)", "log_lines": "\(total.logLines)"])
                }
                // SQLite's file gives its free pages back; PostgreSQL's autovacuum does that itself.
                if total.runs > 0 || total.logLines > 0, hold.mayAct, store.sqlite != nil {
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
                try? await clock.sleep(for: .seconds(600))
            }
        }
    }

    /// Graceful shutdown: writes are refused (503) from now on; the rolls in hand stop at
    /// their next safe point (a hook gets `shutdown_timeout`, then TERM and KILL); their runs
    /// stay `running` with their leases released for the next start to resume; the
    /// write-ahead log is moved into the database file; then HTTP stops.
    public func stop() async {
        shutdown.begin()
        changeFeed?.stop()
        await dispatcher.stop()
        for task in background.withLock({ $0 }) { task.cancel() }
        do {
            try store.releaseServer(owner: owner)
            try store.checkpoint()
        } catch {
            logger.error("cannot release the database cleanly; the next start takes over once the lease expires",
                         metadata: ["error": "\(error)"])
        }
        await server.stop()
    }
}
