import Configuration
import WireFormat
import LoadBalancing
import Hooks
import ArgumentParser
import CSpawn
import Dispatch
import Logging
import MicroHTTP
import Outbound
import RollgateServer
import Rollout
import PostgresStore
import SQLiteStore
import SQLStore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

@main
struct RollgateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollgate",
        abstract: "Roll a deploy through a load balancer, one instance at a time.",
        version: RollgateVersion.text,
        subcommands: [Serve.self, Migrate.self, CheckConfig.self, Backup.self, CopyDatabase.self, Deploy.self, Runs.self, RunDetail.self, Logs.self,
                      Cancel.self, Promote.self, Rollback.self, Status.self, Plan.self, Lock.self, Unlock.self, Restore.self, Forget.self])

    /// A mistyped command is named with the nearest one (`rollgate deplyo` -> `deploy`), not
    /// as "unexpected arguments".
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        if let first = arguments.first, !first.hasPrefix("-"), !names.contains(first) {
            let nearest = names.map { ($0, editDistance(first, $0)) }.min { $0.1 < $1.1 }
            if let (name, distance) = nearest, distance <= max(2, first.count / 3) {
                printError("rollgate: unknown command \(first); did you mean `rollgate \(name)`? (`rollgate --help` lists every command)")
            } else {
                printError("rollgate: unknown command \(first) (`rollgate --help` lists every command)")
            }
            Glibc.exit(64)
        }
        await main(nil)
    }
}

/// Levenshtein distance: the fewest single-character edits from `a` to `b`.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}

let environment: [String: String] = {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") { result[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
        pointer += 1
    }
    return result
}()

let executablePath: String? = {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
}()

func locate(_ name: String, _ key: String) -> String {
    InstallLayout.locate(name, environmentKey: key, environment: environment, executablePath: executablePath)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (with no --config: the demo).")

    @Option(help: "YAML config file. Without one, rollgate starts the demo.") var config: String?
    @Option(help: "HOST:PORT to listen on (overrides the config).") var listen: String?
    @Option(help: "SQLite database path or PostgreSQL URI (overrides the config).") var database: String?
    @Option(help: "Directory of NNNN_name.sql migrations.") var migrations: String?
    @Option(help: "This rollgate's name among replicas, shown on the runs it rolls (overrides the config; default the host name).")
    var name: String?
    @Option(help: "text or json (one JSON object a line, for journald and log shippers).") var logFormat: String = "text"
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String = "info"
    @Flag(help: "Log every HTTP request: method, path, status, duration, run id (never tokens or signatures).")
    var accessLog = false

    func validate() throws {
        if let listen, ListenAddress(listen) == nil {
            throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:8080")
        }
        if let name, let problem = Config.problem(withName: name) { throw ValidationError("--name: \(problem)") }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() async throws {
        hardenProcess()
        let (settings, logger) = try configure()
        signal(SIGPIPE, SIG_IGN)
        // MHD may hold a reserve of max_connections / 8 above it (see RequestDeadlines).
        raiseOpenFileLimit(toHold: Int(settings.connections.total) * 9 / 8 + 16, logger: logger)
        let app = try App(config: settings, migrationsDirectory: migrations ?? locate("migrations", "ROLLGATE_MIGRATIONS"),
                          publicDirectory: locate("public", "ROLLGATE_PUBLIC_DIR"), environment: environment, logger: logger,
                          outbound: CurlHTTP())
        do {
            try await app.start()
        } catch let held as DatabaseHeld {
            throw ValidationError(held.description)
        } catch let bind as HTTPServerError {
            // Port taken: say what to do, not a usage block.
            let port = settings.listen.port
            printError("rollgate: \(bind.description)")
            printError("hint: another program (perhaps another rollgate) holds port \(port); see which with `ss -ltnp 'sport = :\(port)'`,"
                       + " or listen elsewhere: `rollgate serve --listen 127.0.0.1:8181` and point the CLI there with"
                       + " `export ROLLGATE_URL=http://127.0.0.1:8181` (or --server)")
            throw ExitCode(1)
        }
        announce(settings, port: app.server.port)
        switch await waitForStop(app) {
        case .signal:
            logger.info("stopping: no new runs; the target in hand gets \(settings.shutdownTimeout.humanText) to reach a safe point (a second signal exits at once)")
            await app.stop()
            logger.info("stopped cleanly; runs in hand resume at the next start")
        case .databaseLost:
            await app.stop()
            throw ExitCode(1)
        }
    }

    /// The config (or the demo's) with the command line's overrides, and rollgate's own log,
    /// which masks its secrets as run logs do (a hook command, an error text).
    func configure() throws -> (Config, Logger) {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        var settings: Config
        let loader = ConfigLoader(environment: environment)
        if let config {
            do { settings = try loader.load(path: config) } catch let errors as ConfigErrors {
                // As check-config says them, one per line, and no usage block under them.
                for problem in errors.errors { printError(problem.located(in: config)) }
                printError("\(config): \(errors.errors.count) error(s); `rollgate check-config \(config)` says the same without starting")
                throw ExitCode(2)
            } catch let problem as ConfigError {
                printError(problem.located(in: config))
                throw ExitCode(2)
            }
        } else {
            settings = Config.demo()
        }
        let mask = HookEnvironment(server: environment, config: settings).mask(config: settings)
        let format: LogLineHandler.Format = logFormat == "json" ? .json : .text
        LoggingSystem.bootstrap { label in LogLineHandler(label: label, format: format, logLevel: level, mask: mask) }
        var logger = Logger(label: "rollgate")
        logger.logLevel = level
        for warning in loader.warnings { logger.warning("\(warning)") }
        if let database { settings.database = database }
        if let name { settings.name = name }
        if let listen, let address = ListenAddress(listen) { settings.listen = address }
        if settings.isDemo && !settings.listen.isLoopback {
            throw ValidationError("the demo needs no token, so it listens on loopback only; give --config to listen on \(settings.listen.host)")
        }
        if !settings.isDemo && settings.apiTokens.isEmpty {
            logger.warning("no api_tokens configured: every write endpoint will answer 401")
        }
        settings.accessLog = accessLog
        return (settings, logger)
    }

    /// Where it listens, on stdout (the demo also says what to try).
    func announce(_ settings: Config, port: UInt16) {
        if settings.isDemo {
            print("""
                rollgate demo: no config given, so this is the built-in demo.
                  service "demo": 3 simulated targets (drain 3s, health check 2s), hooks that only echo.
                  listening on http://\(settings.listen.host):\(port)/ (loopback only, no token needed)
                  database \(PostgresURI.redacted(settings.database))
                try:
                  curl -X POST -d '{"service":"demo","version":"v2"}' http://\(settings.listen.host):\(port)/api/v1/deploys
                  curl http://\(settings.listen.host):\(port)/
                """)
        } else {
            print("rollgate listening on \(settings.tls == nil ? "http" : "https")://\(settings.listen.host):\(port)/ with \(settings.services.count) service(s); database \(PostgresURI.redacted(settings.database))")
        }
        fflush(nil)   // stdout may be a pipe or file: say it now, not at exit
    }
}

enum StopReason { case signal, databaseLost }

/// Suspends until SIGINT or SIGTERM, or until another rollgate takes the database over.
func waitForStop(_ app: App) async -> StopReason {
    let (reasons, continuation) = AsyncStream<StopReason>.makeStream()
    app.onDatabaseLost { continuation.yield(.databaseLost) }
    Task {
        await waitForTerminationSignal()
        continuation.yield(.signal)
    }
    for await reason in reasons { return reason }
    return .signal
}

/// Before anything is read or written: files rollgate creates (the database, its WAL,
/// backups) are 0600 (umask 077; hooks inherit it, as under systemd's UMask=0077), and the
/// process is not dumpable, so a hook running as the same user cannot read
/// /proc/<rollgate>/environ or attach to it.
func hardenProcess() {
    umask(0o077)
    if rollgate_process_not_dumpable() != 0 {
        printError("rollgate: warning: cannot mark the process not dumpable (prctl: \(String(cString: strerror(errno)))); hooks running as this user could read its environment")
    }
}

/// Suspends until SIGINT or SIGTERM.
func waitForTerminationSignal() async {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let queue = DispatchQueue(label: "rollgate.signals")
        let once = OnceFlag()
        var sources: [DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                if once.claim() {
                    continuation.resume()
                } else {
                    // Everything acted on is already recorded (write ahead): the next start
                    // takes the runs in hand over and resumes them.
                    let text = "rollgate: second signal, exiting now; runs in hand resume at the next start\n"
                    _ = text.withCString { write(2, $0, strlen($0)) }
                    _exit(1)
                }
            }
            source.resume()
            sources.append(source)
        }
        signalSources = sources
    }
}

nonisolated(unsafe) var signalSources: [DispatchSourceSignal] = []   // kept alive for the process

final class OnceFlag: @unchecked Sendable {
    // @unchecked: only touched on the serial signal queue.
    private var done = false
    func claim() -> Bool { defer { done = true }; return !done }
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the database migrations and exit.")
    @Option(help: "SQLite database path, or a PostgreSQL URI (postgres://user@host:5432/rollgate).") var database: String = "./rollgate.db"
    @Option(help: "Directory of NNNN_name.sql migrations (PostgreSQL's are in its postgres/).") var migrations: String?

    func run() throws {
        hardenProcess()
        let directory = migrations ?? locate("migrations", "ROLLGATE_MIGRATIONS")
        if PostgresURI.isPostgres(database) {
            let migrator = try PostgresMigrator(directory: directory + "/postgres")
            let applied = try migrator.migrate(try PGConnection(uri: database))
            let name = PostgresURI.redacted(database)
            print(applied.isEmpty
                  ? "\(name) is up to date at schema version \(migrator.latestVersion)"
                  : "\(name): applied \(applied.map(String.init).joined(separator: ", ")); now at schema version \(migrator.latestVersion)")
            return
        }
        let migrator = try Migrator(directory: directory)
        let connection = try Connection(path: database)
        try SQLiteEngine.configureWriter(connection)
        let applied = try migrator.migrate(connection)
        print(applied.isEmpty
              ? "\(database) is up to date at schema version \(migrator.latestVersion)"
              : "\(database): applied \(applied.map(String.init).joined(separator: ", ")); now at schema version \(migrator.latestVersion)")
    }
}

struct CopyDatabase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy-database",
        abstract: "Copy a SQLite history into an empty PostgreSQL database (from one machine to several replicas).",
        discussion: """
            Stop rollgate first. Every run, step, log line, event, delivery, left-out target and lock is \
            copied with its ids in one PostgreSQL transaction, each table's count checked: the copy is \
            whole or absent. Then point every replica's `database:` at the PostgreSQL URI.
            """)
    @Option(help: "The SQLite database to copy.") var from: String = "./rollgate.db"
    @Option(help: "An empty PostgreSQL database's URI (postgres://user@host:5432/rollgate).") var to: String
    @Option(help: "Directory of NNNN_name.sql migrations (PostgreSQL's in its postgres/).") var migrations: String?

    func validate() throws {
        guard PostgresURI.isPostgres(to) else {
            throw ValidationError("--to must be a PostgreSQL URI (postgres://user@host:5432/rollgate), got \(to)")
        }
    }

    func run() throws {
        hardenProcess()
        let directory = migrations ?? locate("migrations", "ROLLGATE_MIGRATIONS")
        let copy = DatabaseCopy(from: from, to: to, sqliteMigrations: try Migrator(directory: directory),
                                postgresMigrations: try PostgresMigrator(directory: directory + "/postgres"))
        do {
            let copied = try copy.run { print($0) }
            let runs = copied.first { $0.table == "runs" }?.rows ?? 0
            print("copied \(runs) run(s) and their history from \(from) to \(PostgresURI.redacted(to)); every table's count checked")
            print("next: set `database: \(PostgresURI.redacted(to))` in each replica's config and start them (the SQLite file is unchanged)")
        } catch let refusal as DatabaseCopy.Refusal {
            printError("copy-database: \(refusal); nothing was copied")
            throw ExitCode(1)
        }
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the database consistently, also while the server runs (SQLite's online backup).",
        discussion: "Restore: stop rollgate, put the copy in place of the database file (remove any -wal and -shm files beside it), start rollgate.")
    @Argument(help: "Where to write the copy (must not exist).") var file: String
    @Option(help: "SQLite database path.") var database: String = "./rollgate.db"

    func validate() throws {
        if FileManager.default.fileExists(atPath: file) { throw ValidationError("\(file) exists; give a new file name") }
        if !FileManager.default.fileExists(atPath: database) { throw ValidationError("no database at \(database); pass --database PATH") }
    }

    func run() throws {
        hardenProcess()
        try Store.backup(database: database, to: file)
        print("\(database) copied to \(file)")
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-config", abstract: "Check a config file and exit.")
    @Argument(help: "YAML config file.") var file: String
    @Flag(help: "Also check, without changing anything, that the AWS credentials work and each target group exists and can be read.")
    var remote = false

    func run() async throws {
        // Secrets behind *_env may be absent when linting; AWS credentials come from the environment.
        let loader = ConfigLoader(environment: environment, lint: true)
        let result = Result { try loader.load(path: file) }
        for warning in loader.warnings { printError("\(file): warning: \(warning)") }
        switch result {
        case .success(let config):
            print("\(file): OK, \(config.services.count) service(s): \(config.services.map(\.name).joined(separator: ", ")); \(config.apiTokens.count) API token(s)")
            guard remote else { return }
            let findings = await RemoteCheck(config: config, environment: environment, http: CurlHTTP()).run()
            for finding in findings where finding.ok {
                print("\(file): \(finding.service): \(finding.message)")
                for line in finding.forecast { print("  " + line) }
            }
            for finding in findings where !finding.ok { printError("\(file): \(finding.service): \(finding.message)") }
            let failed = findings.filter { !$0.ok }.count
            if failed > 0 {
                printError("\(file): \(failed) service(s) cannot be reached as configured")
                throw ExitCode(2)
            }
        case .failure(let error as ConfigErrors):
            for problem in error.errors { printError(problem.located(in: file)) }
            printError("\(file): \(error.errors.count) error(s)")
            throw ExitCode(2)
        case .failure(let error):
            printError("\(file): \(error)")
            throw ExitCode(2)
        }
    }
}

/// A line on stderr (errors and warnings, so scripts can keep stdout clean).
func printError(_ text: String) {
    var line = Array(text.utf8)
    line.append(10)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Every connection is a file descriptor: the soft limit (often 1,024) goes up to the hard
/// one so `http.max_connections` can be reached; if even that is short, the log says so.
func raiseOpenFileLimit(toHold connections: Int, logger: Logger) {
    var limit = rlimit()
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    guard getrlimit(resource, &limit) == 0 else { return }
    if limit.rlim_cur < limit.rlim_max {
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        if setrlimit(resource, &raised) == 0 { limit = raised }
    }
    let room = Int(clamping: limit.rlim_cur) - 64   // the database, hooks' pipes, the log
    if room < connections {
        logger.warning("open files are limited to \(limit.rlim_cur): at most about \(max(room, 0)) connections, not http.max_connections \(connections); raise LimitNOFILE (systemd) or ulimit -n")
    }
}
