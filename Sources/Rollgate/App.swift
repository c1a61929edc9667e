import Logging
import Synchronization
import MicroHTTP
import Outbound
import Rollout
import SQLiteStore

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

/// Whether the server is shutting down: writes are then answered 503 with Retry-After.
public final class ShutdownState: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func begin() { flag.store(true, ordering: .relaxed) }
    public var isShuttingDown: Bool { flag.load(ordering: .relaxed) }
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
    private let background = Mutex<[Task<Void, Never>]>([])

    public init(config: Config, migrationsDirectory: String, publicDirectory: String,
                environment: [String: String], logger: Logger, clock: any RolloutClock = SystemClock(),
                listen: ListenAddress? = nil, lease: LeaseTerms = LeaseTerms(), outbound: any OutboundHTTP = CurlHTTP()) throws {
        self.config = config
        self.outbound = outbound
        self.logger = logger
        self.clock = clock
        self.lease = lease
        identity = ProcessIdentity()
        owner = identity.current
        let health = StoreHealth()
        self.health = health
        let metrics = telemetry.metrics
        telemetry.prepare(services: config.services.map(\.name))
        store = try Store(path: config.database, migrator: Migrator(directory: migrationsDirectory), now: clock.now, metrics: metrics)
        let services = try ServiceDirectory(config: config, store: store, clock: clock, environment: environment, health: health,
                                            metrics: metrics)
        self.services = services
        let hooks = HookEnvironment(server: environment, config: config)
        // The rolls' writes run on threads of their own: a busy wait on the write lock never
        // holds one of Swift's cooperative threads (the page and /api/v1/services run there).
        let context = RollContext(owner: owner, lease: lease, health: health, mask: hooks.mask(config: config),
                                  observer: services.cache, metrics: metrics, blocking: BlockingWork(width: 8))
        let store = self.store
        // Every write a roll makes into its run is fenced by this process's lease on it.
        let fenced = store.fenced(by: owner)
        let shutdownAllowance = config.shutdownTimeout
        dispatcher = Dispatcher(
            queue: store, clock: clock, logger: logger, owner: owner, lease: lease, liveness: identity,
            recovery: Recovery(queue: store, clock: clock, executor: HookRunner(baseEnvironment: [:])),
            health: health) { run in
                services.roll(for: run, hooks: hooks, shutdownAllowance: shutdownAllowance, journal: fenced,
                              clock: clock, logger: logger, context: context)
            }
        let dispatcher = self.dispatcher
        let api = API(store: store, config: config, services: services, clock: clock,
                      wakeDispatcher: { Task { await dispatcher.wake() } },
                      statusPage: StatusPage(files: StaticFiles(root: config.publicDir ?? publicDirectory), store: store,
                                             config: config, services: services, clock: clock),
                      health: health, shutdown: shutdown,
                      rateLimiter: WriteRateLimiter(perSecond: config.writeRate.perSecond, burst: config.writeRate.burst),
                      telemetry: telemetry, logger: logger)
        let address = listen ?? config.listen
        self.api = api
        router = api.router
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
        let identity = self.identity
        let holder: ServerHolder?
        do {
            holder = try store.claimServer(owner: owner, until: clock.now.adding(lease.duration), at: clock.now,
                                           isGone: { identity.isGone($0) })
        } catch {
            throw Store.explainUnwritable(error, path: config.database)
        }
        if let holder { throw DatabaseHeld(database: config.database, holder: holder) }
        do {
            try server.start()
        } catch {
            try? store.releaseServer(owner: owner)
            throw error
        }
        let notifier = Notifier(store: store, config: config, http: outbound, clock: clock, logger: logger,
                                telemetry: telemetry)
        background.withLock { $0 = [keepLease(), prune(), Task { await notifier.run() }] }
        await dispatcher.start()
    }

    /// Renews this process's hold on the database; losing it (another process took over
    /// after our lease ran out) stops every roll here at once.
    private func keepLease() -> Task<Void, Never> {
        let store = self.store, owner = self.owner, clock = self.clock, lease = self.lease
        let health = self.health, logger = self.logger, dispatcher = self.dispatcher
        return Task {
            while !Task.isCancelled {
                try? await clock.sleep(for: lease.renewEvery)
                if Task.isCancelled { return }
                do {
                    if try store.renewServer(owner: owner, until: clock.now.adding(lease.duration)) {
                        health.succeeded()
                    } else {
                        logger.critical("another rollgate took this database over; stopping every roll here")
                        await dispatcher.stop()
                        return
                    }
                } catch {
                    health.failed(error, at: clock.now)
                    logger.error("cannot renew the hold on the database", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Removes what `retention:` no longer keeps, at start and every 10 minutes.
    private func prune() -> Task<Void, Never> {
        let store = self.store, retention = config.retention, clock = self.clock, logger = self.logger
        return Task {
            guard retention.keepRuns != nil || retention.keepLogs != nil else { return }
            while !Task.isCancelled {
                do {
                    let pruned = try store.prune(retention, at: clock.now)
                    if pruned.runs > 0 || pruned.logLines > 0 {
                        logger.info("pruned", metadata: ["runs": "\(pruned.runs)", "log_lines": "\(pruned.logLines)"])
                    }
                } catch {
                    logger.error("cannot prune old runs", metadata: ["error": "\(error)"])
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
