import Rollout

/// What a token may do: `read` runs, logs, services and the page (when reads are not open);
/// `deploy` start and cancel runs; `admin` lock, unlock, restore and forget.
public enum TokenScope: String, Sendable, CaseIterable {
    case read, deploy, admin
}

/// An API token: its name (shown in runs as `api:<name>`) and the secret, never printed.
public struct APIToken: Sendable {
    public var name: String
    public var secret: String
    /// The environment variable it came from (`token_env`), nil when written in the file.
    public var variable: String?
    /// A bot (a chat bot, a CI system) may say on whose behalf it asks (`requested_by`).
    public var bot: Bool
    /// Every scope unless the config lists some.
    public var scopes: Set<TokenScope>

    public init(name: String, secret: String, variable: String? = nil, bot: Bool = false,
                scopes: Set<TokenScope> = Set(TokenScope.allCases)) {
        self.name = name
        self.secret = secret
        self.variable = variable
        self.bot = bot
        self.scopes = scopes
    }
}

/// The secrets that sign incoming webhooks; an endpoint without its secret answers 404.
public struct WebhookSecrets: Sendable {
    /// `X-Hub-Signature-256`.
    public var github: String?
    /// `X-Gitlab-Token`.
    public var gitlab: String?
    /// Standard Webhooks, `whsec_...`.
    public var generic: String?
    /// Slack's signing secret (v0 signatures).
    public var slack: String?

    public init(github: String? = nil, gitlab: String? = nil, generic: String? = nil, slack: String? = nil) {
        self.github = github
        self.gitlab = gitlab
        self.generic = generic
        self.slack = slack
    }

    package var all: [String] { [github, gitlab, generic, slack].compactMap { $0 } }
}

/// Where a service's runs are told about: a Slack incoming webhook, a webhook signed the
/// Standard Webhooks way, GitHub deployment statuses for runs GitHub started.
public struct NotifySettings: Sendable, Equatable {
    public var slackWebhook: String?
    public var webhookURL: String?
    public var webhookSecret: String?
    public var githubToken: String?
    /// The environment variables these came from: never passed to hooks, masked in logs.
    var variables: [String] = []

    public init(slackWebhook: String? = nil, webhookURL: String? = nil, webhookSecret: String? = nil, githubToken: String? = nil) {
        self.slackWebhook = slackWebhook
        self.webhookURL = webhookURL
        self.webhookSecret = webhookSecret
        self.githubToken = githubToken
    }

    var isEmpty: Bool { slackWebhook == nil && webhookURL == nil && githubToken == nil }
    package var secrets: [String] { [slackWebhook, webhookSecret, githubToken].compactMap { $0 } }
}

/// How notifications are retried: `first` after the first failure, doubling up to `max`,
/// given up after `attempts` (later events then go on).
public struct RetrySettings: Sendable, Equatable {
    public var first: Duration = .seconds(1)
    public var max: Duration = .seconds(300)
    public var attempts = 25
    public init(first: Duration = .seconds(1), max: Duration = .seconds(300), attempts: Int = 25) {
        self.first = first
        self.max = max
        self.attempts = attempts
    }
}

/// What outside a service may start its deploys: a GitHub repository and branch (and
/// Deployments API environment), a GitLab project and branch, Slack users.
public struct ServiceTriggers: Sendable, Equatable {
    public struct Git: Sendable, Equatable {
        /// `acme/web` (GitHub) or `group/web` (GitLab), compared case-insensitively.
        public var repository: String
        public var branch: String
        /// GitHub Deployments: the environment that deploys this service (default: the service's name).
        public var environment: String?
        /// GitLab: where its pages are (`url`, default https://gitlab.com), for links to commits.
        public var webURL: String?
        public init(repository: String, branch: String, environment: String? = nil, webURL: String? = nil) {
            self.repository = repository
            self.branch = branch
            self.environment = environment
            self.webURL = webURL
        }
    }
    public var github: Git?
    public var gitlab: Git?
    /// Slack user ids (`U...`/`W...`, never names: a display name is the user's to change)
    /// allowed to deploy, cancel or promote it; empty: anyone in the workspace.
    public var slackAllow: [String] = []

    public init(github: Git? = nil, gitlab: Git? = nil, slackAllow: [String] = []) {
        self.github = github
        self.gitlab = gitlab
        self.slackAllow = slackAllow
    }
}

/// Where a service's targets live.
public enum TargetGroupSource: Sendable, Equatable {
    case simulated(SimulationSettings)
    /// AWS target groups (`target_group_arn`, or several with `target_group_arns`: every
    /// target is in each of them).
    case awsTargetGroups(arns: [String])
}

public struct ServiceConfig: Sendable {
    public var plan: ServicePlan
    public var source: TargetGroupSource
    /// Server variables passed to hooks although they look like secrets (`hook_env`).
    public var hookEnv: [String] = []
    public var triggers = ServiceTriggers()
    public var notify = NotifySettings()
    public var name: String { plan.name }
    /// Rolled through the ELBv2 API (not simulated).
    public var needsAWS: Bool { if case .awsTargetGroups = source { true } else { false } }

    public init(plan: ServicePlan, source: TargetGroupSource, hookEnv: [String] = [], triggers: ServiceTriggers = ServiceTriggers()) {
        self.plan = plan
        self.source = source
        self.hookEnv = hookEnv
        self.triggers = triggers
    }
}



public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// `HOST:PORT`, e.g. `127.0.0.1:8080`.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        let host = String(text[..<colon])
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { "\(host):\(port)" }
    public var isLoopback: Bool { host == "127.0.0.1" || host == "localhost" || host.hasPrefix("127.") }
}

public struct AWSSettings: Sendable, Equatable {
    public var region: String?
    /// An endpoint override (moto, LocalStack); else `AWS_ENDPOINT_URL`, else AWS's.
    public var endpointURL: String?
    /// rollgate's own share of the account's ELB API limit, per region (`AWSCallBudget`).
    public var budget = AWSCallBudgetRates()
    public init(region: String? = nil, endpointURL: String? = nil) {
        self.region = region
        self.endpointURL = endpointURL
    }
}

/// `aws: {describe_per_second, changes_per_second}`: ELB refills an account's Describe*
/// bucket at 10 a second; the defaults leave most of it to the console, Terraform and the rest.
public struct AWSCallBudgetRates: Sendable, Equatable {
    public var describePerSecond: Double = 4
    public var changesPerSecond: Double = 2
    public init() {}
}

/// The whole configuration, from YAML or the built-in demo.
public struct Config: Sendable {
    public var listen: ListenAddress
    public var database: String
    /// The PostgreSQL password from `database_password_env` (never written in the file); nil:
    /// libpq finds it (`PGPASSWORD`, `~/.pgpass`, a `passfile`, the URI).
    public var databasePassword: String?
    /// This rollgate's name among replicas (`name:` or `--name`): written on each run it
    /// rolls (`rolled_by`), in `/healthz` and `/metrics`. Nil: the host name.
    public var name: String?
    public var publicDir: String?
    public var apiTokens: [APIToken]
    public var services: [ServiceConfig]
    /// The built-in demo: loopback only, writes need no token.
    public var isDemo: Bool
    /// Where AWS is; unset parts come from the environment as the AWS CLI reads it.
    public var aws = AWSSettings()
    /// SIGTERM: how long the target in hand may take to reach a safe point.
    public var shutdownTimeout: Duration = .seconds(60)
    /// How long a run's (and the database's) lease lasts without renewal; renewed every fifth
    /// of it, and a holder that cannot renew stops acting two thirds of it after its last
    /// renewal. Another process takes over only once it ends.
    public var lease: Duration = .seconds(15)
    /// `Retention.default` unless the config says otherwise (`all` keeps everything).
    public var retention = Retention.default
    /// Environment variables that hold rollgate's own secrets (API tokens, webhook secrets):
    /// never passed to hooks, their values masked in logs.
    public var secretVariables: [String] = []
    public var webhooks = WebhookSecrets()
    /// How people reach this server (links in Slack answers and notifications).
    public var publicURL: String?
    /// Reads without a token (`public_read: true`): for a server behind SSO, or a dashboard
    /// everyone may see. Otherwise reads need a token with the read scope (or a session made
    /// with one at /login); only the demo (no config, loopback) is open.
    public var publicRead = false
    /// Log every HTTP request (`--access-log`).
    public var accessLog = false
    /// Why a replica name cannot be used, or nil: 1-64 letters, digits, `.`, `-` and `_` (it
    /// goes into runs, log lines and metric labels).
    public static func problem(withName name: String) -> String? {
        let allowed = name.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || ".-_".unicodeScalars.contains($0) }
        return (1...64).contains(name.count) && allowed ? nil
            : "a replica name is 1 to 64 letters, digits, '.', '-' or '_' (e.g. the host name), got \(name.debugDescription)"
    }

    /// Reads need no token in the demo or with `public_read: true`. Listening on loopback is
    /// no reason: a reverse proxy in front (`proxy_pass http://127.0.0.1:8080`) publishes it.
    public var readsAreOpen: Bool { isDemo || publicRead }
    /// GitHub: a push whose signed `repository.pushed_at` (or a deployment whose `created_at`)
    /// is older than this is acknowledged and ignored (`github: {max_age: 1h}`).
    public var githubMaxAge: Duration = .seconds(3600)
    /// Slack user ids (`U...`, `W...`) who may lock and unlock services from Slack
    /// (`slack: {admins: [...]}`); nobody when empty.
    public var slackAdmins: [String] = []
    /// Test only (`ROLLGATE_TEST_LOOPBACK_RESPONSE_URL=1`): Slack's response_url may also be
    /// `http://127.0.0.1:PORT/...`, for a sink in tests. Never set in production.
    public var loopbackResponseURLs = false
    /// Writes each token may make: `burst` at once, then `perSecond`.
    public var writeRate = (perSecond: 10.0, burst: 60)
    /// `http:`: connections in all, per client address, and how long one may send nothing.
    public var connections = ConnectionLimits()
    public var notificationRetry = RetrySettings()
    /// PEM text of the key and certificate (`tls: {key_file, cert_file}`): serve HTTPS directly.
    public var tls: (key: String, certificate: String)?
    /// GitHub's API for deployment statuses (GitHub Enterprise: `https://HOST/api/v3`).
    public var githubAPI = "https://api.github.com"

    public init(listen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 8080), database: String = "./rollgate.db",
                publicDir: String? = nil, apiTokens: [APIToken] = [], services: [ServiceConfig], isDemo: Bool = false) {
        self.listen = listen
        self.database = database
        self.publicDir = publicDir
        self.apiTokens = apiTokens
        self.services = services
        self.isDemo = isDemo
    }

    public func service(named name: String) -> ServiceConfig? { services.first { $0.name == name } }

    /// `rollgate serve` with no config: service `demo`, 3 simulated targets, harmless hooks.
    public static func demo(database: String = "./rollgate.db") -> Config {
        let plan = ServicePlan(
            name: "demo", pollInterval: .milliseconds(500), drainTimeout: .seconds(60),
            healthyTimeout: .seconds(60), hookTimeout: .seconds(60),
            hooks: HookCommands(
                prepare: #"echo "would fetch build $ROLLGATE_VERSION for $ROLLGATE_TARGET_ID""#,
                deploy: #"echo "would stop the old app on $ROLLGATE_TARGET_ID:$ROLLGATE_TARGET_PORT"; sleep 1; echo "would install and start $ROLLGATE_SERVICE $ROLLGATE_VERSION""#,
                verify: #"echo "would check $ROLLGATE_TARGET_ID answers with $ROLLGATE_VERSION""#))
        let settings = SimulationSettings(targets: 3, drainTime: .seconds(3), healthyTime: .seconds(2), port: 8080)
        return Config(database: database, services: [ServiceConfig(plan: plan, source: .simulated(settings))], isDemo: true)
    }
}

/// What keeps the server answering when clients misbehave (`http:` in the config): a client
/// that opens connections and sends nothing holds each only `idleTimeout`, one address holds
/// at most `perAddress` (behind a reverse proxy every client has the proxy's address: raise
/// it there), and `total` bounds them all.
public struct ConnectionLimits: Sendable, Equatable {
    public var total: UInt32 = 4096
    public var perAddress: UInt32 = 256
    public var idleTimeout: Duration = .seconds(10)
    /// A request's line, headers and body must arrive within this, however they trickle in.
    public var requestTimeout: Duration = .seconds(30)

    public init() {}
}
