import Configuration
import Integrations
import Crypto
import Rollout

/// The browser's way in: signing in at `/login` with a token makes a session cookie that
/// carries that token's name, its scopes then and an expiry, signed with the token's own
/// secret (HMAC-SHA256). Nothing is stored on the server: the cookie dies at its expiry, when
/// its token is removed from the config, or when the token's secret changes, and a session
/// never has a scope its token no longer has. For now a session only reads.
struct SessionCookie: Equatable {
    static let name = "rollgate_session"
    /// How long a sign-in lasts.
    static let lifetime: Int64 = 12 * 3600

    let tokenName: String
    let scopes: Set<TokenScope>
    let expires: Int64

    /// The cookie's value: `v1.HEXNAME.EXPIRES.SCOPES.HEXMAC`.
    func value(signedWith secret: String) -> String {
        let body = unsigned
        return body + "." + WebhookSignature.hexString(SessionCookie.mac(secret, body))
    }

    private var unsigned: String {
        "v1.\(WebhookSignature.hexString(Array(tokenName.utf8))).\(expires).\(scopes.map(\.rawValue).sorted().joined(separator: "+"))"
    }

    /// The session a cookie value proves at `now`, with the scopes both it and its token still
    /// have; nil for anything else (forged, expired, from a token that is gone or changed).
    static func verify(_ value: String, tokens: [APIToken], now: Int64) -> (token: APIToken, scopes: Set<TokenScope>)? {
        guard value.utf8.count <= 600 else { return nil }
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "v1", let nameBytes = WebhookSignature.hexBytes(parts[1]),
              let name = String(validating: nameBytes, as: UTF8.self),
              let expires = WebhookSignature.unixSeconds(String(parts[2])), let presented = WebhookSignature.hexBytes(parts[4]),
              let token = tokens.first(where: { $0.name == name }) else { return nil }
        let body = parts[0..<4].joined(separator: ".")
        guard constantTimeEqual(presented, mac(token.secret, body)), expires > now else { return nil }
        var scopes: Set<TokenScope> = []
        for text in parts[3].split(separator: "+") {
            guard let scope = TokenScope(rawValue: String(text)) else { return nil }
            scopes.insert(scope)
        }
        return (token, scopes.intersection(token.scopes))
    }

    /// The `Set-Cookie` header's value: `HttpOnly` (no script reads it), `SameSite=Strict` (no
    /// other site's page sends it), `Secure` when rollgate serves HTTPS itself or is reached
    /// through an https:// public_url.
    func header(signedWith secret: String, secure: Bool) -> String {
        "\(SessionCookie.name)=\(value(signedWith: secret)); Path=/; Max-Age=\(SessionCookie.lifetime); HttpOnly; SameSite=Strict"
            + (secure ? "; Secure" : "")
    }

    static func clearing(secure: Bool) -> String {
        "\(name)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    /// The value of this cookie in a `Cookie:` header, if sent.
    static func presented(in header: String?) -> String? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let trimmed = pair.drop { $0 == " " }
            if trimmed.hasPrefix(name + "=") { return String(trimmed.dropFirst(name.count + 1)) }
        }
        return nil
    }

    private static func mac(_ secret: String, _ body: String) -> [UInt8] {
        WebhookSignature.hmac(key: Array(secret.utf8), Array("rollgate-session:".utf8) + Array(body.utf8))
    }
}
