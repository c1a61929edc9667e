/// A PostgreSQL connection URI as rollgate reads it (the config checks it), shows it (its
/// password replaced) and connects with it (with `database_password_env`'s password).
public enum PostgresURI {
    public static func isPostgres(_ database: String) -> Bool {
        database.hasPrefix("postgres://") || database.hasPrefix("postgresql://")
    }

    /// The URI as it may be shown: a password in it (`user:PW@`, `password=PW`) as `***`.
    public static func redacted(_ uri: String) -> String {
        var shown = uri
        let parts = uri.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 2 {
            let authority = parts[1].prefix { $0 != "/" && $0 != "?" }
            if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
                shown = parts[0] + "://" + parts[1][..<colon] + ":***" + parts[1][at...]
            }
        }
        guard let query = shown.firstIndex(of: "?") else { return shown }
        let parameters = shown[shown.index(after: query)...].split(separator: "&", omittingEmptySubsequences: false).map { parameter in
            parameter.lowercased().hasPrefix("password=") ? "password=***" : String(parameter)
        }
        return shown[...query] + parameters.joined(separator: "&")
    }

    /// The URI libpq is given: with `password` (from `database_password_env`) as a query
    /// parameter, percent-encoded, when there is one.
    public static func connecting(_ uri: String, password: String?) -> String {
        guard let password, isPostgres(uri) else { return uri }
        let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
        let hex = Array("0123456789ABCDEF")
        let encoded = password.utf8.map { byte in
            unreserved.contains(byte) ? String(UnicodeScalar(byte)) : "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0x0F)])
        }.joined()
        return uri + (uri.contains("?") ? "&" : "?") + "password=" + encoded
    }

    /// Whether the URI carries a password itself (`user:PW@` or `password=`).
    public static func holdsPassword(_ uri: String) -> Bool { redacted(uri) != uri }
}
