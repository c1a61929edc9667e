import Configuration
import HTTPAPI
import Hooks
import LoadBalancing
import Monitoring
import Page
import WireFormat
import Logging
import ServiceLifecycle
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
    /// The long-running parts, one group once started (`Lifecycle.swift`).
    private let running = Mutex<(group: ServiceGroup, task: Task<Void, Never>)?>(nil)
    let lostHandlers = LostHandlers()

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
            store = try Store(postgres: PostgresURI.connecting(config.database, password: config.databasePassword), migrator: PostgresMigrator(directory: migrationsDirectory + "/postgres"), now: clock.now,
                              metrics: metrics, replica: replica)
        } else {
            store = try Store(path: config.database, migrator: Migrator(directory: migrationsDirectory), now: clock.now, metrics: metrics,
                              leaseClock: clock, replica: replica)
        }
        let services = try ServiceDirectory(config: config, store: store, clock: clock, environment: environment, http: outbound, health: health,
                                            metrics: metrics, work: blocking)
        self.services = services
        let hooks = HookEnvironment(server: environment, config: config)
        // The rolls' writes run on threads of their own: a busy wait on the write lock never
        // holds one of Swift's cooperative threads (the page and /api/v1/services run there).
        let blocking = self.blocking
        let context = RollContext(lease: lease, health: health, mask: hooks.mask(config: config),
                                  observer: services.cache, metrics: metrics, blocking: blocking, healthChecks: store)
        let store = self.store
        let shutdownAllowance = config.shutdownTimeout
        // The dispatcher's queue and each roll's journal are awaited; their calls are made on
        // the store's own threads.
        let queue = QueueOnThreads(store, work: blocking)
        dispatcher = Dispatcher(
            queue: queue, clock: clock, logger: logger, owner: owner, lease: lease, liveness: identity,
            recovery: Recovery(queue: queue, clock: clock, executor: HookRunner(baseEnvironment: [:])),
            health: health) { run in
                guard let held = run.lease else { return .failure(RunFailure(.unexpected, "run \(run.id) was handed over without its lease")) }
                // Every write the roll makes into its run is fenced by this holding of it.
                return services.roll(for: run, hooks: hooks, shutdownAllowance: shutdownAllowance, journal: JournalOnThreads(store.fenced(by: held), work: blocking),
                                     clock: clock, logger: logger, context: context)
            }
        let dispatcher = self.dispatcher
        // The API's and the page's async reads and writes wait on threads of their own
        // (never Swift's pool, never the rolls' threads); immediate reads on the HTTP server's.
        let ports = StorePorts(store: store, work: BlockingWork(width: 8))
        let api = API(history: store, reads: ports, requests: ports, config: config, services: services, clock: clock,
                      wakeDispatcher: { Task { await dispatcher.wake() } },
                      statusPage: StatusPage(files: StaticFiles(root: config.publicDir ?? publicDirectory), history: store, reads: ports,
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
            changeFeed = PostgresChangeFeed(uri: PostgresURI.connecting(config.database, password: config.databasePassword)) { tails.changed($0) }
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

    /// Claims the database on SQLite (refusing if another live rollgate serves it), listens (a
    /// port in use fails before anything is touched), then starts the long-running parts as
    /// one service group (`longRunningParts`); returns once the dispatcher has started (it takes over
    /// runs a previous process left `running` and resumes them, then takes queued runs).
    public func start() async throws {
        let onSQLite = store.dialect != .postgres
        if onSQLite { try claimDatabase() }
        do {
            try server.start()
        } catch {
            if onSQLite { try? store.releaseServer(owner: owner) }
            throw error
        }
        let started = Started()
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: longRunningParts(started: started), logger: logger))
        let logger = self.logger
        let task = Task {
            do { try await group.run() } catch {
                logger.critical("the server's services stopped on an error", metadata: ["error": "\(error)"])
            }
        }
        running.withLock { $0 = (group, task) }
        await started.wait()
    }

    /// SQLite: the whole database is this process's from now on, or `DatabaseHeld` says who
    /// serves it.
    private func claimDatabase() throws {
        let identity = self.identity
        let asked = clock.uptime
        let holder: ServerHolder?
        do {
            holder = try store.claimServer(owner: owner, for: lease.duration, isGone: { identity.isGone($0) })
        } catch {
            throw SQLiteEngine.explainUnwritable(error, path: config.database)
        }
        if let holder { throw DatabaseHeld(database: config.database, holder: holder) }
        hold.renewed(askedAt: asked)
        shutdown.follow(hold)   // from now on, writes only while the hold is this process's
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

    /// Graceful shutdown: the service group stops its parts in reverse of their order in
    /// `services`: writes are refused (503) from then on, the background duties stop, the
    /// rolls in hand stop at their next safe point (a hook gets `shutdown_timeout`, then TERM
    /// and KILL) with their runs left `running` and their leases released for the next start
    /// to resume, streams stop being woken, HTTP stops, and the hold on the database is
    /// given back (on SQLite the write-ahead log moved into the database file).
    public func stop() async {
        guard let (group, task) = running.withLock({ $0 }) else {
            shutdown.begin()
            await server.stop()
            return
        }
        await group.triggerGracefulShutdown()
        await task.value
    }
}
