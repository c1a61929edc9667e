import Logging
import MicroHTTP
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

/// The running server: store, services, dispatcher and HTTP, started in that order and
/// stopped in reverse.
public final class App: Sendable {
    public let config: Config
    public let store: Store
    public let dispatcher: Dispatcher
    public let server: HTTPServer
    /// The API's routes, callable without a socket.
    public let router: Router
    let services: ServiceDirectory
    let logger: Logger
    let clock: any RolloutClock
    let executor: HookRunner

    public init(config: Config, migrationsDirectory: String, publicDirectory: String,
                environment: [String: String], logger: Logger, clock: any RolloutClock = SystemClock(),
                listen: ListenAddress? = nil) throws {
        self.config = config
        self.logger = logger
        self.clock = clock
        store = try Store(path: config.database, migrator: Migrator(directory: migrationsDirectory), now: clock.now)
        let services = try ServiceDirectory(config: config, store: store, clock: clock, environment: environment)
        self.services = services
        let executor = HookRunner(baseEnvironment: environment)
        self.executor = executor
        let store = self.store
        dispatcher = Dispatcher(queue: store, clock: clock, logger: logger) { run in
            services.roll(for: run, executor: executor, journal: store, clock: clock, logger: logger)
        }
        let dispatcher = self.dispatcher
        let api = API(store: store, config: config, services: services, clock: clock,
                      wakeDispatcher: { Task { await dispatcher.wake() } },
                      statusPage: StatusPage(files: StaticFiles(root: config.publicDir ?? publicDirectory), store: store,
                                             config: config, services: services),
                      logger: logger)
        let address = listen ?? config.listen
        router = api.router
        server = HTTPServer(configuration: HTTPServerConfiguration(host: address.host, port: address.port), router: router)
    }

    /// Listens first (a port in use fails before anything is touched), then ends runs a
    /// previous process left `running`, then starts taking queued runs.
    public func start() async throws {
        try server.start()
        let services = self.services
        let recovered = try await Recovery(queue: store, clock: clock, executor: executor,
                                           loadBalancer: { services.loadBalancer(for: $0) })
            .resolveInterrupted()
        for (id, message) in recovered {
            logger.warning("found an interrupted run", metadata: ["run.id": "\(id)", "error": "\(message)"])
        }
        await dispatcher.start()
    }

    /// Stops accepting requests, finishes those in flight, then stops the rolls in hand.
    public func stop() async {
        await server.stop()
        await dispatcher.stop()
    }
}
