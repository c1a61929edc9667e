import Configuration
import Rollout

/// What of the server's environment a service's hooks get, and which values are masked out
/// of stored logs. Hooks get the server's environment without rollgate's own secrets: API
/// token and webhook secret variables never, AWS credentials and anything named like a
/// secret (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*PRIVATE_KEY*`, `*CREDENTIAL*`) or holding
/// a URL with a password (`postgres://app:PW@db/...`) only when the service lists the
/// variable in `hook_env`. Masking is best effort: a hook that encodes a value it was given
/// (base64, reversed) gets past it.
public struct HookEnvironment: Sendable {
    /// Variables whose values are rollgate's own credentials: never passed, even if listed.
    public let ownSecretNames: Set<String>
    public let server: [String: String]

    static let awsCredentialNames: Set<String> = [
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    ]
    static let secretLikeParts = ["TOKEN", "SECRET", "PASSWORD", "PRIVATE_KEY", "CREDENTIAL"]

    public init(server: [String: String], config: Config) {
        self.server = server
        ownSecretNames = Set(config.secretVariables)
    }

    static func looksSecret(_ name: String) -> Bool {
        let upper = name.uppercased()
        return awsCredentialNames.contains(upper) || secretLikeParts.contains { upper.contains($0) }
    }

    /// The password of a URL that carries one (`scheme://user:PASSWORD@host...`), whatever the
    /// variable is called (`DATABASE_URL`, `REDIS_URL`).
    static func urlPassword(_ value: String) -> String? {
        guard let scheme = value.firstRange(of: "://") else { return nil }
        let rest = value[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard let at = authority.lastIndex(of: "@") else { return nil }
        let userInfo = authority[..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return nil }
        let password = userInfo[userInfo.index(after: colon)...]
        return password.isEmpty ? nil : String(password)
    }

    /// A variable whose value is a secret: named like one, or a URL with a password in it.
    static func holdsSecret(_ name: String, _ value: String) -> Bool {
        looksSecret(name) || urlPassword(value) != nil
    }

    /// The environment a service's hooks start from (ROLLGATE_* are added per hook).
    public func base(passing listed: [String]) -> [String: String] {
        let allowed = Set(listed)
        return server.filter { name, value in
            if ownSecretNames.contains(name) { return false }
            if HookEnvironment.holdsSecret(name, value) { return allowed.contains(name) }
            return true
        }
    }

    /// Values masked in every stored line: API tokens (also from the file), webhook secrets,
    /// and every secret-looking variable of the server, passed to hooks or not.
    public func mask(config: Config) -> SecretMask {
        var values = config.apiTokens.map(\.secret) + config.webhooks.all + config.services.flatMap(\.notify.secrets)
            + [config.databasePassword].compactMap { $0 }
        for (name, value) in server where ownSecretNames.contains(name) || HookEnvironment.holdsSecret(name, value) {
            values.append(value)
            // The password alone too (a hook may print the parts of a URL).
            if let password = HookEnvironment.urlPassword(value) { values.append(password) }
        }
        return SecretMask(values)
    }
}
