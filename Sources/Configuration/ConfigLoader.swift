import Rollout
import YAML
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A config error, naming the key and the line: `services[0].poll_interval (line 12): ...`.
public struct ConfigError: Error, CustomStringConvertible {
    public let path: String
    public let line: Int?
    public let message: String

    public var description: String {
        let place = line.map { "\(path) (line \($0))" } ?? path
        return path.isEmpty ? message : "\(place): \(message)"
    }

    /// As compilers say it, so editors jump to it: `FILE:LINE: PATH: MESSAGE`.
    public func located(in file: String) -> String {
        (line.map { "\(file):\($0)" } ?? file) + ": " + (path.isEmpty ? message : "\(path): \(message)")
    }
}

/// Reads the YAML config. Unknown keys are errors (a typo must not silently change a roll);
/// secrets come from environment variables unless written in the file with `token:`.
public struct ConfigLoader {
    let environment: [String: String]
    /// `check-config`: a secret's variable may be unset (a warning), and hook files are checked
    /// relative to the working directory.
    let lint: Bool
    let findings = Findings()

    public init(environment: [String: String], lint: Bool = false) {
        self.environment = environment
        self.lint = lint
    }

    /// What reading a config found: every error (reading goes on past one), and warnings.
    public final class Findings: @unchecked Sendable {
        // @unchecked: one loader reads one file on one thread.
        public private(set) var errors: [ConfigError] = []
        public private(set) var warnings: [String] = []
        func error(_ error: Error) {
            if error is ServiceSkipped { return }
            errors.append(error as? ConfigError ?? ConfigError(path: "", line: nil, message: "\(error)"))
        }
        func warn(_ text: String) { warnings.append(text) }
        /// Runs one section; its error is kept and the next section is read.
        func collect(_ body: () throws -> Void) {
            do { try body() } catch { self.error(error) }
        }
    }

    /// Warnings of the last parse (secrets unset while linting).
    public var warnings: [String] { findings.warnings }

    public func load(path: String) throws -> Config {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(path: "", line: nil, message: "cannot read config file \(path)")
        }
        return try parse(String(decoding: data, as: UTF8.self))
    }

    public func parse(_ text: String) throws -> Config {
        let root: YAMLNode
        do {
            guard let node = try YAMLDocument.parse(text) else {
                throw ConfigError(path: "", line: nil, message: "the config file is empty")
            }
            root = node
        } catch let error as YAMLError {
            throw ConfigError(path: "", line: error.line, message: "not valid YAML: \(error)")
        }
        let top = try Mapping(root, path: "")
        for unknown in top.unknownKeys(allowed: ["listen", "database", "database_password_env", "name", "public_dir", "shutdown_timeout", "lease", "retention", "api_tokens",
                                                 "github", "gitlab", "webhooks", "slack", "aws", "services", "public_url",
                                                 "rate_limit", "notifications", "tls", "public_read", "http"]) {
            findings.error(unknown)
        }
        var config = Config(services: [])
        config.loopbackResponseURLs = environment["ROLLGATE_TEST_LOOPBACK_RESPONSE_URL"] == "1"
        findings.collect {
            if let listen = try top.string("listen") {
                guard let address = ListenAddress(listen) else {
                    throw top.error("listen", "expected HOST:PORT such as 127.0.0.1:8080, got \(listen)")
                }
                config.listen = address
            }
        }
        findings.collect { config.database = try top.string("database") ?? config.database }
        var passwordVariable: String?
        findings.collect {
            guard let variable = try top.string("database_password_env") else { return }
            guard PostgresURI.isPostgres(config.database) else {
                throw top.error("database_password_env", "a password is for a PostgreSQL database (database: postgres://...); SQLite has none")
            }
            passwordVariable = variable
            if PostgresURI.holdsPassword(config.database) {
                throw top.error("database_password_env", "the database URI holds a password already; give it in one place (the environment is safer)")
            }
            guard let value = environment[variable], !value.isEmpty else {
                if lint {
                    findings.warn("\(top.child("database_password_env")): environment variable \(variable) is not set here (rollgate serve needs it)")
                    return
                }
                throw top.error("database_password_env", "environment variable \(variable) is not set or empty")
            }
            config.databasePassword = value
        }
        findings.collect {
            guard let name = try top.string("name") else { return }
            if let problem = Config.problem(withName: name) { throw top.error("name", problem) }
            config.name = name
        }
        findings.collect { config.publicDir = try top.string("public_dir") }
        findings.collect {
            for (index, node) in try top.sequence("api_tokens").enumerated() {
                findings.collect {
                    let token = try token(node, path: "api_tokens[\(index)]")
                    // Runs, sessions and rate limits know a token by its name: two with one name
                    // would be one caller with two secrets.
                    if config.apiTokens.contains(where: { $0.name == token.name }) {
                        throw ConfigError(path: "api_tokens[\(index)].name", line: node.line,
                                          message: "token name \(token.name) is used twice; give each token a name of its own")
                    }
                    config.apiTokens.append(token)
                }
            }
        }
        findings.collect { config.shutdownTimeout = try top.duration("shutdown_timeout", minimum: .seconds(1)) ?? config.shutdownTimeout }
        findings.collect {
            if let lease = try top.duration("lease", minimum: .seconds(3)) {
                guard lease <= .seconds(300) else { throw top.error("lease", "must be at most 5m (a dead process holds its runs that long)") }
                config.lease = lease
            }
        }
        findings.collect { try settings(top, into: &config) }
        config.secretVariables = config.apiTokens.compactMap(\.variable) + [passwordVariable].compactMap { $0 }
        findings.collect { try webhooks(top, into: &config) }
        findings.collect {
            if let aws = try top.mapping("aws") {
                try aws.check(allowed: ["region", "endpoint_url", "describe_per_second", "changes_per_second"])
                config.aws.region = try aws.string("region")
                for (key, path) in [("describe_per_second", \AWSCallBudgetRates.describePerSecond),
                                    ("changes_per_second", \AWSCallBudgetRates.changesPerSecond)] {
                    guard let text = try aws.string(key) else { continue }
                    // ELB refills the account's buckets at 10 a second at most: more is never ours.
                    guard let value = Double(text), value >= 0.1, value <= 10 else {
                        throw aws.error(key, "expected calls per second between 0.1 and 10 (ELB refills an account's bucket at 10 a second), got \(text)")
                    }
                    config.aws.budget[keyPath: path] = value
                }
                if let url = try aws.string("endpoint_url") {
                    guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                        throw aws.error("endpoint_url", "expected http://HOST:PORT or https://HOST, got \(url)")
                    }
                    config.aws.endpointURL = url
                }
            }
        }
        findings.collect {
            let services = try top.sequence("services")
            guard !services.isEmpty else { throw top.error("services", "at least one service is needed") }
            var names: [String: Int] = [:]
            for (index, node) in services.enumerated() {
                // A name given twice is said whatever else is wrong with either service.
                if let map = try? Mapping(node, path: "services[\(index)]"), let name = try? map.string("name") {
                    if let first = names[name] {
                        findings.error(map.error("name", "service \(name) is defined twice (first as services[\(first)]); give each service a name of its own"))
                    } else {
                        names[name] = index
                    }
                }
                findings.collect {
                    let service = try self.service(node, path: "services[\(index)]")
                    config.secretVariables += service.notify.variables
                    if let own = service.hookEnv.first(where: { config.secretVariables.contains($0) }) {
                        throw ConfigError(path: "services[\(index)].hook_env", line: line(node),
                                          message: "\(own) holds one of rollgate's own secrets (an API token or webhook secret); it is never passed to hooks")
                    }
                    config.services.append(service)
                }
            }
        }
        if lint && config.apiTokens.isEmpty && config.webhooks.all.isEmpty && findings.errors.isEmpty {
            findings.error(ConfigError(path: "api_tokens", line: nil,
                                       message: "no api_tokens and no webhook secret: nothing could ever start a deploy; add {name: ci, token_env: VARIABLE}"))
        }
        // Reached from other machines by a name: that name must be public_url's, or Host is refused.
        if config.publicURL == nil && !config.listen.isLoopback {
            findings.warn("public_url is not set: requests must name this server by IP address, localhost or \(config.listen.host) (Host); any other name gets 421. Set public_url to the name clients and webhooks use")
        }
        if !findings.errors.isEmpty { throw ConfigErrors(errors: findings.errors) }
        return config
    }

    /// retention, notifications, rate_limit, tls, public_url, public_read.
    private func settings(_ top: Mapping, into config: inout Config) throws {
        findings.collect {
            if let retention = try top.mapping("retention") {
                try retention.check(allowed: ["keep_runs", "keep_logs"])
                // A key left out keeps its default; `all` keeps everything of that kind.
                if try retention.string("keep_runs") == "all" {
                    config.retention.keepRuns = nil
                } else if let keep = try retention.int("keep_runs") {
                    guard keep >= 1 else { throw retention.error("keep_runs", "at least 1 (a service's newest run is always kept), or all") }
                    config.retention.keepRuns = keep
                }
                if try retention.string("keep_logs") == "all" {
                    config.retention.keepLogs = nil
                } else if let keep = try retention.duration("keep_logs", minimum: .seconds(60)) {
                    config.retention.keepLogs = keep
                }
            }
        }
        findings.collect {
            if let url = try top.string("public_url") {
                guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                    throw top.error("public_url", "expected https://HOST[:PORT], got \(url)")
                }
                config.publicURL = url.hasSuffix("/") ? String(url.dropLast()) : url
            }
        }
        findings.collect { config.publicRead = try top.bool("public_read") ?? false }
        findings.collect {
            if let tls = try top.mapping("tls") {
                try tls.check(allowed: ["key_file", "cert_file"])
                func pem(_ key: String) throws -> String {
                    let path = try tls.required(key)
                    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8),
                          text.contains("-----BEGIN") else {
                        throw tls.error(key, "cannot read a PEM file at \(path)")
                    }
                    return text
                }
                config.tls = (try pem("key_file"), try pem("cert_file"))
            }
        }
        findings.collect {
            if let notifications = try top.mapping("notifications") {
                try notifications.check(allowed: ["retry_first", "retry_max", "attempts"])
                config.notificationRetry.first = try notifications.duration("retry_first", minimum: .milliseconds(10)) ?? config.notificationRetry.first
                config.notificationRetry.max = try notifications.duration("retry_max", minimum: .milliseconds(10)) ?? config.notificationRetry.max
                if let attempts = try notifications.int("attempts") {
                    guard attempts >= 1 else { throw notifications.error("attempts", "at least 1") }
                    config.notificationRetry.attempts = attempts
                }
            }
        }
        findings.collect {
            guard let http = try top.mapping("http") else { return }
            try http.check(allowed: ["max_connections", "connections_per_address", "idle_timeout", "request_timeout"])
            if let timeout = try http.duration("request_timeout", minimum: .seconds(1)) {
                guard timeout <= .seconds(3600) else { throw http.error("request_timeout", "at most 1h") }
                config.connections.requestTimeout = timeout
            }
            if let total = try http.int("max_connections") {
                guard (16...1_000_000).contains(total) else { throw http.error("max_connections", "between 16 and 1000000") }
                config.connections.total = UInt32(total)
            }
            if let perAddress = try http.int("connections_per_address") {
                guard (1...1_000_000).contains(perAddress) else { throw http.error("connections_per_address", "at least 1") }
                config.connections.perAddress = UInt32(perAddress)
            }
            if let timeout = try http.duration("idle_timeout", minimum: .seconds(1)) {
                guard timeout <= .seconds(3600) else { throw http.error("idle_timeout", "at most 1h") }
                config.connections.idleTimeout = timeout
            }
        }
        findings.collect {
            if let rate = try top.mapping("rate_limit") {
                try rate.check(allowed: ["writes_per_second", "burst"])
                if let perSecond = try rate.number("writes_per_second") {
                    guard perSecond > 0 else { throw rate.error("writes_per_second", "must be more than 0") }
                    config.writeRate.perSecond = perSecond
                }
                if let burst = try rate.int("burst") {
                    guard burst >= 1 else { throw rate.error("burst", "at least 1") }
                    config.writeRate.burst = burst
                }
            }
        }
    }

    private func token(_ node: YAMLNode, path: String) throws -> APIToken {
        let map = try Mapping(node, path: path, allowed: ["name", "token", "token_env", "bot", "scopes"])
        let name = try map.required("name")
        guard let (secret, variable) = try secret(map, "token") else {
            throw map.error("token_env", "give token_env: VARIABLE (or token: ... in the file)")
        }
        var scopes = Set(TokenScope.allCases)
        if map.value("scopes") != nil {
            scopes = Set(try map.sequence("scopes").map { node in
                guard let text = node.scalar, let scope = TokenScope(rawValue: text) else {
                    throw map.error("scopes", "a list of read, deploy, admin")
                }
                return scope
            })
        }
        return APIToken(name: name, secret: secret, variable: variable, bot: try map.bool("bot") ?? false, scopes: scopes)
    }

    /// One service. Its parts are read one by one so that every mistake in it is reported;
    /// the service is kept only when it has none.
    private func service(_ node: YAMLNode, path: String) throws -> ServiceConfig {
        let map = try Mapping(node, path: path)
        let before = findings.errors.count
        for unknown in map.unknownKeys(allowed: [
            "name", "target_group_arn", "target_group_arns", "simulated", "poll_interval", "drain_timeout", "healthy_timeout",
            "hooks", "hook_timeout", "hook_env", "github", "gitlab", "slack", "notify", "max_unavailable", "fast_drain",
            "canary", "on_failure", "health_check_during_roll"]) {
            findings.error(unknown)
        }
        var name = ""
        findings.collect {
            name = try map.required("name")
            guard name.utf8.count <= 64, name.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || (48...57).contains($0) || (97...122).contains($0) }) else {
                throw map.error("name", "a service name is 1-64 of a-z, 0-9, - and _ (got \(name))")
            }
        }
        var source: TargetGroupSource?
        findings.collect {
            let arns = try targetGroupARNs(map)
            switch (arns, try map.mapping("simulated")) {
            case (let arns?, nil):
                source = .awsTargetGroups(arns: arns)
            case (nil, let simulated?):
                source = .simulated(try simulation(simulated, service: try? map.string("name")))
            case (.some, .some):
                throw map.error("simulated", "give target_group_arn(s) or simulated, not both")
            case (nil, nil):
                throw map.error("target_group_arn", "missing: give target_group_arn: ARN, target_group_arns: [ARN, ...] or simulated: {targets: 3}")
            }
        }
        var hooks: HookCommands?
        findings.collect {
            guard let hooksMap = try map.mapping("hooks") else { throw map.error("hooks", "missing: hooks: {deploy: ./deploy.sh} is required") }
            try hooksMap.check(allowed: ["prepare", "deploy", "verify"])
            let commands = HookCommands(prepare: try hooksMap.string("prepare"), deploy: try hooksMap.required("deploy"),
                                        verify: try hooksMap.string("verify"))
            for (key, command) in [("prepare", commands.prepare), ("deploy", commands.deploy), ("verify", commands.verify)] where lint {
                guard let command, let first = command.split(separator: " ").first, first.contains("/") else { continue }
                if !FileManager.default.fileExists(atPath: String(first)) {
                    findings.error(hooksMap.error(key, "\(first) does not exist (relative paths start from the directory rollgate runs in: \(FileManager.default.currentDirectoryPath))"))
                }
            }
            hooks = commands
        }
        var triggers = ServiceTriggers(), notify = NotifySettings()
        findings.collect { triggers = try self.triggers(map) }
        findings.collect { notify = try self.notify(map) }
        var plan: ServicePlan?
        findings.collect {
            let drainTimeout = try map.duration("drain_timeout")
            let healthyTimeout = try map.duration("healthy_timeout")
            // A simulation's unset waits are sized from it (twice its time, plus 10 s): a target
            // it is told never turns healthy fails in seconds, not after AWS-sized 5 minutes.
            var simulatedDrain: Duration?, simulatedHealthy: Duration?
            if case .simulated(let simulation) = source {
                simulatedDrain = simulation.drainTime * 2 + .seconds(10)
                simulatedHealthy = simulation.healthyTime * 2 + .seconds(10)
            }
            var timed = ServicePlan(
                name: name,
                pollInterval: try map.duration("poll_interval", minimum: .milliseconds(100)) ?? .seconds(1),
                drainTimeout: drainTimeout ?? simulatedDrain ?? .seconds(600),
                healthyTimeout: healthyTimeout ?? simulatedHealthy ?? .seconds(300),
                hookTimeout: try map.duration("hook_timeout") ?? .seconds(900),
                hooks: hooks ?? HookCommands(deploy: ""))
            // Unset waits of a real group are sized from the group itself at each run.
            timed.sizeDrainFromGroup = drainTimeout == nil
            timed.sizeHealthyFromGroup = healthyTimeout == nil
            plan = timed
        }
        findings.collect {
            guard let text = try map.string("max_unavailable") else { return }
            guard let maxUnavailable = MaxUnavailable.parse(text) else {
                throw map.error("max_unavailable", "expected a number of targets (1 is one at a time) or a percentage like 25%, got \(text)")
            }
            plan?.maxUnavailable = maxUnavailable
        }
        findings.collect {
            guard let canary = try map.mapping("canary") else { return }
            try canary.check(allowed: ["targets", "bake", "check"])
            let count = try canary.string("targets").map { text -> Int in
                guard let count = Int(text), count >= 1 else { throw canary.error("targets", "how many targets the canary is: 1 or more, got \(text)") }
                return count
            } ?? 1
            guard let bake = try canary.duration("bake", minimum: .seconds(1)) else {
                throw canary.error("bake", "missing: how long the canary runs before the rest, e.g. bake: 5m")
            }
            plan?.canary = Canary(targets: count, bake: bake, check: try canary.string("check"))
        }
        findings.collect {
            guard let text = try map.string("on_failure") else { return }
            guard let onFailure = OnFailure(rawValue: text) else {
                throw map.error("on_failure", "stop (leave a failed run as it is) or rollback (put the previous good version back), got \(text)")
            }
            plan?.onFailure = onFailure
        }
        findings.collect {
            guard let fast = try map.mapping("fast_drain") else { return }
            try fast.check(allowed: ["check", "quiet", "measure_only"])
            let check: String = try fast.required("check")
            guard let quiet = try fast.duration("quiet", minimum: .seconds(1)) else {
                throw fast.error("quiet", "missing: how long the check must pass without a break, e.g. quiet: 10s")
            }
            if lint, let first = check.split(separator: " ").first, first.contains("/"), !FileManager.default.fileExists(atPath: String(first)) {
                findings.error(fast.error("check", "\(first) does not exist (relative paths start from the directory rollgate runs in: \(FileManager.default.currentDirectoryPath))"))
            }
            plan?.fastDrain = FastDrain(check: check, quiet: quiet, measureOnly: try fast.bool("measure_only") ?? false)
        }
        findings.collect {
            guard let tight = try map.mapping("health_check_during_roll") else { return }
            try tight.check(allowed: ["interval", "healthy_threshold"])
            guard case .awsTargetGroups(let arns) = source else {
                throw map.error("health_check_during_roll", "needs target_group_arn: a simulation has no health check to change")
            }
            guard arns.count == 1 else {
                throw map.error("health_check_during_roll", "takes one target group (target_group_arn), not several")
            }
            guard let interval = try tight.duration("interval", minimum: .seconds(5)), interval <= .seconds(300),
                  interval == .seconds(Int64(interval.seconds.rounded())) else {
                throw tight.error("interval", "whole seconds from 5s to 300s (ELB's bounds), e.g. interval: 5s")
            }
            guard let threshold = try tight.int("healthy_threshold"), (2...10).contains(threshold) else {
                throw tight.error("healthy_threshold", "2 to 10 (ELB's bounds), e.g. healthy_threshold: 2")
            }
            plan?.healthCheckDuringRoll = HealthCheckTightening(interval: interval, healthyThreshold: threshold)
        }
        var hookEnv: [String] = []
        findings.collect {
            hookEnv = try map.sequence("hook_env").map { node in
                guard let name = node.scalar, !name.isEmpty else { throw map.error("hook_env", "a list of environment variable names") }
                return name
            }
        }
        guard findings.errors.count == before, let plan, let source else { throw ServiceSkipped() }
        var service = ServiceConfig(plan: plan, source: source, hookEnv: hookEnv, triggers: triggers)
        service.notify = notify
        return service
    }

    /// `target_group_arn: ARN` or `target_group_arns: [ARN, ...]` (2 to 5, each once); nil
    /// when neither is given.
    private func targetGroupARNs(_ map: Mapping) throws -> [String]? {
        let single = try map.string("target_group_arn")
        let several = map.value("target_group_arns") != nil ? try map.sequence("target_group_arns").map { node -> String in
            guard let arn = node.scalar else { throw map.error("target_group_arns", "a list of target group ARNs") }
            return arn
        } : nil
        let arns: [String]
        switch (single, several) {
        case (nil, nil): return nil
        case (.some, .some): throw map.error("target_group_arns", "give target_group_arn or target_group_arns, not both")
        case (let arn?, nil): arns = [arn]
        case (nil, let list?):
            guard (1...5).contains(list.count) else { throw map.error("target_group_arns", "1 to 5 target groups, got \(list.count)") }
            guard Set(list).count == list.count else { throw map.error("target_group_arns", "a target group is named twice") }
            arns = list
        }
        for arn in arns where !TargetGroupARN.isValid(arn) {
            throw map.error(single != nil ? "target_group_arn" : "target_group_arns",
                            "expected arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID (12-digit account, hex id), got \(arn)")
        }
        return arns
    }

    /// A service with errors (already recorded) is left out of the config.
    struct ServiceSkipped: Error {}

    private func simulation(_ map: Mapping, service: String?) throws -> SimulationSettings {
        try map.check(allowed: ["targets", "drain_seconds", "healthy_seconds", "port", "unhealthy_targets"])
        var settings = SimulationSettings()
        if let targets = try map.int("targets") {
            guard (1...100).contains(targets) else { throw map.error("targets", "between 1 and 100") }
            settings.targets = targets
        }
        if let seconds = try map.number("drain_seconds") { settings.drainTime = .seconds(seconds) }
        if let seconds = try map.number("healthy_seconds") { settings.healthyTime = .seconds(seconds) }
        if let port = try map.int("port") {
            guard (1...65535).contains(port) else { throw map.error("port", "between 1 and 65535") }
            settings.port = port
        }
        settings.unhealthyTargets = Set(try map.sequence("unhealthy_targets").map { node in
            guard let text = node.scalar else { throw map.error("unhealthy_targets", "a list of target ids") }
            return text
        })
        // The simulation names its targets SERVICE-1 to SERVICE-N: another name would never fail.
        if let service {
            let ids = SimulatedLoadBalancer.targetIDs(service: service, count: settings.targets)
            if let unknown = settings.unhealthyTargets.sorted().first(where: { !ids.contains($0) }) {
                throw map.error("unhealthy_targets", "\(unknown) is not one of this simulation's targets (\(ids.count == 1 ? ids[0] : "\(ids[0]) to \(ids[ids.count - 1])"))")
            }
        }
        return settings
    }

    private func line(_ node: YAMLNode) -> Int? { node.line }
}

/// A YAML mapping with the path used in errors.
struct Mapping {
    let node: YAMLNode
    let path: String
    let pairs: [(String, YAMLNode)]

    init(_ node: YAMLNode, path: String, allowed: Set<String>? = nil) throws {
        guard let mapping = node.mapping else {
            throw ConfigError(path: path.isEmpty ? "(top level)" : path, line: node.line, message: "expected a mapping of key: value")
        }
        self.node = node
        self.path = path
        self.pairs = mapping.map { ($0.key.scalar ?? "", $0.value) }
        // A key written twice would silently take one of the two values: a typo must not change a roll.
        var seen: [String: Int] = [:]
        for (key, _) in mapping {
            let name = key.scalar ?? ""
            if let first = seen[name] {
                throw ConfigError(path: path.isEmpty ? name : "\(path).\(name)", line: key.line,
                                  message: "written twice (first on line \(first)); keep one")
            }
            seen[name] = key.line
        }
        if let allowed { try check(allowed: allowed) }
    }

    func check(allowed: Set<String>) throws {
        if let first = unknownKeys(allowed: allowed).first { throw first }
    }

    /// Every key not in `allowed`, each with the nearest known key when it looks misspelt.
    func unknownKeys(allowed: Set<String>) -> [ConfigError] {
        pairs.filter { !allowed.contains($0.0) }.map { key, value in
            let near = allowed.map { ($0, editDistance(key, $0)) }.filter { $0.1 <= 2 }.min { $0.1 < $1.1 }?.0
            let hint = near.map { "did you mean \($0)? " } ?? ""
            return ConfigError(path: child(key), line: value.line,
                               message: "unknown key (\(hint)known here: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func value(_ key: String) -> YAMLNode? {
        guard let node = pairs.first(where: { $0.0 == key })?.1, !node.isNull else { return nil }
        return node
    }

    func error(_ key: String, _ message: String) -> ConfigError {
        ConfigError(path: child(key), line: value(key)?.line ?? node.line, message: message)
    }

    func string(_ key: String) throws -> String? {
        guard let node = value(key) else { return nil }
        guard let text = node.scalar else { throw error(key, "expected a string") }
        return text
    }

    func required(_ key: String) throws -> String {
        guard let text = try string(key), !text.isEmpty else { throw error(key, "missing (required)") }
        return text
    }

    func int(_ key: String) throws -> Int? {
        guard let text = try string(key) else { return nil }
        guard let value = Int(text) else { throw error(key, "expected a whole number, got \(text)") }
        return value
    }

    func number(_ key: String) throws -> Double? {
        guard let text = try string(key) else { return nil }
        guard let value = Double(text), value >= 0, value < 86_400 else { throw error(key, "expected a number of seconds, got \(text)") }
        return value
    }

    func duration(_ key: String, minimum: Duration = .milliseconds(1)) throws -> Duration? {
        guard let text = try string(key) else { return nil }
        guard let duration = DurationText.parse(text) else {
            throw error(key, "expected a duration like 500ms, 30s, 10m or 1h, got \(text)")
        }
        guard duration >= minimum else { throw error(key, "must be at least \(minimum.humanText)") }
        return duration
    }

    func bool(_ key: String) throws -> Bool? {
        guard let text = try string(key) else { return nil }
        switch text {
        case "true", "yes": return true
        case "false", "no": return false
        default: throw error(key, "expected true or false, got \(text)")
        }
    }

    func mapping(_ key: String) throws -> Mapping? {
        guard let node = value(key) else { return nil }
        return try Mapping(node, path: child(key))
    }

    func sequence(_ key: String) throws -> [YAMLNode] {
        guard let node = value(key) else { return [] }
        guard let sequence = node.sequence else { throw error(key, "expected a list") }
        return Array(sequence)
    }
}

/// Every error a config file has, one a line.
public struct ConfigErrors: Error, CustomStringConvertible {
    /// In the file's line order (errors without a line, about the file as a whole, first).
    public let errors: [ConfigError]
    public init(errors: [ConfigError]) {
        self.errors = errors.enumerated().sorted { ($0.element.line ?? 0, $0.offset) < ($1.element.line ?? 0, $1.offset) }.map(\.element)
    }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// `arn:PARTITION:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID`.
enum TargetGroupARN {
    static func isValid(_ arn: String) -> Bool {
        let parts = arn.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "arn", parts[1].hasPrefix("aws"), parts[2] == "elasticloadbalancing",
              !parts[3].isEmpty, parts[4].count == 12, parts[4].allSatisfy(\.isNumber) else { return false }
        let resource = parts[5].split(separator: "/", omittingEmptySubsequences: false)
        guard resource.count == 3, resource[0] == "targetgroup", (1...32).contains(resource[1].count),
              !resource[2].isEmpty, resource[2].allSatisfy(\.isHexDigit) else { return false }
        return true
    }
}

/// Levenshtein distance, for "did you mean".
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for (i, x) in a.enumerated() {
        var current = [i + 1]
        for (j, y) in b.enumerated() {
            current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
        }
        previous = current
    }
    return previous[b.count]
}
