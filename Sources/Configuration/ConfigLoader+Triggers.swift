import Rollout

/// Secrets, webhook endpoints and what may start a service's deploys.
extension ConfigLoader {
    /// A secret given as `KEY_env: VARIABLE` (preferred) or `KEY: "..."` in the file, at least
    /// 16 characters; nil when neither is given. Returns the value and its variable.
    func secret(_ map: Mapping, _ key: String, minimum: Int = 16) throws -> (String, String?)? {
        let literal = try map.string(key)
        let variable = try map.string(key + "_env")
        if literal != nil && variable != nil {
            throw map.error(key, "give \(key)_env or \(key), not both")
        }
        if let literal {
            guard literal.count >= minimum else { throw map.error(key, "a secret must be at least \(minimum) characters") }
            return (literal, nil)
        }
        guard let variable else { return nil }
        guard let value = environment[variable], !value.isEmpty else {
            if lint {
                findings.warn("\(map.child(key + "_env")): environment variable \(variable) is not set here (rollgate serve needs it)")
                return (String(repeating: "x", count: max(minimum, 16)), variable)
            }
            throw map.error(key + "_env", "environment variable \(variable) is not set or empty")
        }
        guard value.count >= minimum else { throw map.error(key + "_env", "\(variable) is shorter than \(minimum) characters") }
        return (value, variable)
    }

    /// A service's `notify: {slack_webhook_env, webhook: {url, secret_env}, github: {token_env}}`.
    func notify(_ map: Mapping) throws -> NotifySettings {
        var settings = NotifySettings()
        guard let notify = try map.mapping("notify") else { return settings }
        try notify.check(allowed: ["slack_webhook", "slack_webhook_env", "webhook", "github"])
        if let (url, variable) = try secret(notify, "slack_webhook") {
            guard url.hasPrefix("https://") || url.hasPrefix("http://") else { throw notify.error("slack_webhook_env", "expected an https:// URL") }
            settings.slackWebhook = url
            if let variable { settings.variables.append(variable) }
        }
        if let webhook = try notify.mapping("webhook") {
            try webhook.check(allowed: ["url", "secret", "secret_env"])
            let url = try webhook.required("url")
            guard url.hasPrefix("https://") || url.hasPrefix("http://") else { throw webhook.error("url", "expected https://HOST/PATH") }
            guard let (secret, variable) = try secret(webhook, "secret") else {
                throw webhook.error("secret_env", "a notification webhook is always signed: give secret_env (whsec_...)")
            }
            guard StandardWebhookSecret.key(secret) != nil else { throw webhook.error("secret_env", "expected whsec_ followed by base64") }
            settings.webhookURL = url
            settings.webhookSecret = secret
            if let variable { settings.variables.append(variable) }
        }
        if let github = try notify.mapping("github") {
            try github.check(allowed: ["token", "token_env"])
            guard let (token, variable) = try secret(github, "token", minimum: 8) else {
                throw github.error("token_env", "give token_env: VARIABLE (a token that may write deployment statuses)")
            }
            settings.githubToken = token
            if let variable { settings.variables.append(variable) }
        }
        return settings
    }

    /// `github: {secret_env}`, `gitlab: {token_env}`, `webhooks: {secret_env}` (whsec_...),
    /// `slack: {signing_secret_env}`: each endpoint is open only with its secret.
    func webhooks(_ top: Mapping, into config: inout Config) throws {
        func read(_ key: String, _ secretKey: String, _ store: (inout WebhookSecrets, String) -> Void) throws {
            guard let map = try top.mapping(key) else { return }
            let extra: [String] = key == "github" ? ["api_url", "max_age"] : key == "slack" ? ["admins"] : []
            try map.check(allowed: Set([secretKey, secretKey + "_env"] + extra))
            if key == "github", let age = try map.duration("max_age", minimum: .seconds(60)) {
                guard age <= .seconds(30 * 86_400) else { throw map.error("max_age", "at most 30d") }
                config.githubMaxAge = age
            }
            if key == "slack" {
                config.slackAdmins = try slackUserIDs(map, "admins")
            }
            if key == "github", let api = try map.string("api_url") {
                guard api.hasPrefix("https://") || api.hasPrefix("http://") else { throw map.error("api_url", "expected https://HOST/api/v3") }
                config.githubAPI = api.hasSuffix("/") ? String(api.dropLast()) : api
            }
            guard let (value, variable) = try secret(map, secretKey) else {
                throw map.error(secretKey + "_env", "give \(secretKey)_env: VARIABLE; without it the endpoint stays closed")
            }
            store(&config.webhooks, value)
            if let variable { config.secretVariables.append(variable) }
        }
        try read("github", "secret") { $0.github = $1 }
        try read("gitlab", "token") { $0.gitlab = $1 }
        try read("slack", "signing_secret") { $0.slack = $1 }
        try read("webhooks", "secret") { $0.generic = $1 }
        if let generic = config.webhooks.generic, StandardWebhookSecret.key(generic) == nil {
            throw ConfigError(path: "webhooks.secret", line: nil, message: "expected a Standard Webhooks secret: whsec_ followed by base64")
        }
    }

    /// A service's `github: {repository, branch, environment?}`, `gitlab: {project, branch}`,
    /// `slack: {allow: [U0123ABCD]}`.
    func triggers(_ map: Mapping) throws -> ServiceTriggers {
        var triggers = ServiceTriggers()
        if let github = try map.mapping("github") {
            try github.check(allowed: ["repository", "branch", "environment"])
            triggers.github = ServiceTriggers.Git(repository: try repository(github, "repository"),
                                                  branch: try github.string("branch") ?? "main",
                                                  environment: try github.string("environment"))
        }
        if let gitlab = try map.mapping("gitlab") {
            try gitlab.check(allowed: ["project", "branch", "url"])
            var url: String?
            if let given = try gitlab.string("url") {
                guard given.hasPrefix("https://") || given.hasPrefix("http://"), !given.contains(where: { $0 == " " || $0 == "\"" || $0 == "<" || $0 == ">" }) else {
                    throw gitlab.error("url", "expected the GitLab server's address, like https://gitlab.example.com")
                }
                url = given.hasSuffix("/") ? String(given.dropLast()) : given
            }
            triggers.gitlab = ServiceTriggers.Git(repository: try repository(gitlab, "project"), branch: try gitlab.string("branch") ?? "main", webURL: url)
        }
        if let slack = try map.mapping("slack") {
            try slack.check(allowed: ["allow"])
            triggers.slackAllow = try slackUserIDs(slack, "allow")
        }
        return triggers
    }

    /// A list of Slack user ids (`U0123ABCD`, `W0123ABCD` on Enterprise Grid). Names are
    /// refused: a display name is the user's to change, so it proves nothing.
    func slackUserIDs(_ map: Mapping, _ key: String) throws -> [String] {
        try map.sequence(key).map { node in
            guard let text = node.scalar, SlackUserID.isValid(text) else {
                throw map.error(key, "a list of Slack user ids such as U0123ABCD (names are not accepted: anyone can take a display name), got \(node.scalar ?? "a non-text value")")
            }
            return text
        }
    }

    private func repository(_ map: Mapping, _ key: String) throws -> String {
        let name = try map.required(key)
        guard name.contains("/"), !name.hasPrefix("/"), !name.hasSuffix("/"), !name.contains(" ") else {
            throw map.error(key, "expected OWNER/NAME such as acme/web, got \(name)")
        }
        return name
    }
}
