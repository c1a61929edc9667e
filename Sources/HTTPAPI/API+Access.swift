import Configuration
import Integrations
import WireFormat
import MicroHTTP
import Rollout
import Synchronization

/// Who may do what: bearer tokens (scopes `read`, `deploy`, `admin`), a browser's session
/// made at `/login`, the `Host` a request names, and a limit on failed authentications per
/// client address.
extension API {
    /// Who is asking, for writes that need `scope`. The demo needs no token; a configured
    /// server always does. While shutting down, writes are refused with 503 and Retry-After;
    /// past its rate, a token's writes get 429.
    func authorize(_ request: HTTPRequest, scope: TokenScope = .admin) throws -> String {
        try caller(request, scope: scope).name
    }

    /// Reads are open in the demo and with `public_read: true`; otherwise they need a token
    /// with the `read` scope, as a bearer token or a session made with one at `/login`.
    func mayRead(_ request: HTTPRequest) throws {
        guard !config.readsAreOpen else { return }
        switch bearer(request) {
        case .token(let token):
            guard token.scopes.contains(.read) else {
                throw Refusal(status: 403, code: "forbidden", message: "token \(token.name) has no read scope")
            }
            return
        case .unknown:
            authenticationFailed(request)
            throw Refusal(status: 401, code: "unauthorized", message: "the bearer token is not valid")
        case .none:
            break
        }
        if let cookie = SessionCookie.presented(in: request.header("cookie")),
           let session = SessionCookie.verify(cookie, tokens: config.apiTokens, now: unixNow) {
            guard session.scopes.contains(.read) else {
                throw Refusal(status: 403, code: "forbidden", message: "the session of token \(session.token.name) has no read scope")
            }
            return
        }
        throw Refusal(status: 401, code: "unauthorized",
                      message: "reading needs Authorization: Bearer <token with the read scope>, or a session from signing in at /login (public_read is off)")
    }

    enum Bearer { case none, unknown, token(APIToken) }

    /// The configured token an `Authorization: Bearer` header names (the scheme in any case),
    /// compared in constant time.
    func bearer(_ request: HTTPRequest) -> Bearer {
        guard let header = request.header("authorization") else { return .none }
        let scheme = header.prefix(7)
        guard scheme.count == 7, scheme.lowercased() == "bearer " else { return .unknown }
        return configuredToken(String(header.dropFirst(7).drop { $0 == " " })).map(Bearer.token) ?? .unknown
    }

    /// The configured token whose secret is `presented`, compared in constant time.
    func configuredToken(_ presented: String) -> APIToken? {
        let bytes = Array(presented.utf8)
        return config.apiTokens.first { constantTimeEqual(bytes, Array($0.secret.utf8)) }
    }

    func readable(_ handler: @escaping (HTTPRequest) throws -> HTTPResponse) -> (HTTPRequest) throws -> HTTPResponse {
        { request in
            try self.mayRead(request)
            return try handler(request)
        }
    }

    /// The token a write comes with (nil in the demo) and the name runs record for it.
    func caller(_ request: HTTPRequest, scope: TokenScope = .deploy) throws -> (name: String, token: APIToken?) {
        if let refusal = shutdown.writeRefusal {
            throw Refusal(status: 503, code: refusal.code, message: refusal.message)
        }
        let caller: (name: String, token: APIToken?)
        if let page = API.pageCaller {
            // A page action, its session and form token already checked.
            guard page.scopes.contains(scope) else {
                throw Refusal(status: 403, code: "forbidden", message: "\(page.name) has no \(scope.rawValue) scope")
            }
            caller = (page.name, page.token)
        } else if config.isDemo {
            caller = ("demo", nil)
        } else {
            let token: APIToken
            switch bearer(request) {
            case .none: throw Refusal(status: 401, code: "unauthorized", message: "this endpoint needs Authorization: Bearer <token>")
            case .unknown:
                authenticationFailed(request)
                throw Refusal(status: 401, code: "unauthorized", message: "the bearer token is not valid")
            case .token(let known): token = known
            }
            guard token.scopes.contains(scope) else {
                throw Refusal(status: 403, code: "forbidden", message: "token \(token.name) has no \(scope.rawValue) scope (it has: \(token.scopes.map(\.rawValue).sorted().joined(separator: ", ")))")
            }
            caller = ("api:\(token.name)", token)
        }
        if let wait = rateLimiter.take(caller.name, at: clock.now) {
            throw Refusal(status: 429, code: "rate_limited",
                          message: "too many writes from \(caller.name); retry in \(wait) s", retryAfter: wait)
        }
        return caller
    }

    var unixNow: Int64 {
        let seconds = clock.now.timeIntervalSince1970
        return seconds.isFinite && abs(seconds) < 1e15 ? Int64(seconds) : 0
    }

    // MARK: - Host

    /// A request must name this server: its `listen` host, `public_url`'s host, a loopback
    /// name, or an IP address. A browser made to send a request by another site through DNS
    /// rebinding names the other site's host, so it is refused before anything is read.
    func refuseForeignHost(_ request: HTTPRequest) throws {
        guard let host = request.header("host"), !hosts.permits(host) else { return }
        throw Refusal(status: 421, code: "misdirected_request",
                      message: "Host \(String(host.prefix(100))) is not a name of this server (it answers to \(hosts.names.sorted().joined(separator: ", ")) and IP addresses); set public_url to the name clients use")
    }

    // MARK: - Failed authentication

    func authenticationFailed(_ request: HTTPRequest) {
        guard let address = request.clientAddress else { return }
        authFailures.failed(address, at: unixNow)
    }

    /// A client address past its budget of failed authentications gets 429 for anything that
    /// carries credentials (a bearer token, a signed webhook, a sign-in) until it refills.
    func refuseLockedOutClient(_ request: HTTPRequest) throws {
        guard let address = request.clientAddress else { return }
        let carriesCredentials = request.header("authorization") != nil
            || (request.method == "POST" && (request.path.hasPrefix("/api/v1/hooks/") || request.path == "/login" || request.path.hasPrefix("/actions/")))
        guard carriesCredentials, let wait = authFailures.lockedOut(address, at: unixNow) else { return }
        throw Refusal(status: 429, code: "too_many_failed_authentications",
                      message: "too many failed authentications from \(address); retry in \(wait) s", retryAfter: Int(wait))
    }

    // MARK: - Sign-in

    /// `GET /login`: a form that takes a token with the read scope.
    func loginPage(_ request: HTTPRequest) throws -> HTTPResponse {
        statusPage.loginForm(message: config.readsAreOpen ? "Reading is open on this server: no sign-in is needed." : nil, status: 200)
    }

    /// `POST /login` (form field `token`): a session cookie for that token, then the page.
    func login(_ request: HTTPRequest) throws -> HTTPResponse {
        let form = FormBody.parse(request.body)
        guard let presented = form["token"], !presented.isEmpty, presented.utf8.count <= 512,
              let token = configuredToken(presented) else {
            authenticationFailed(request)
            return statusPage.loginForm(message: "That token is not valid.", status: 401)
        }
        guard token.scopes.contains(.read) else {
            return statusPage.loginForm(message: "Token \(token.name) has no read scope.", status: 403)
        }
        let session = SessionCookie(tokenName: token.name, scopes: token.scopes, expires: unixNow + SessionCookie.lifetime)
        var response = HTTPResponse(status: 303, headers: [("Location", "/")])
        response.headers.append(("Set-Cookie", session.header(signedWith: token.secret, secure: securesCookies)))
        logger.info("signed in", metadata: ["token": "\(token.name)", "client": "\(request.clientAddress ?? "-")"])
        return response
    }

    /// `POST /logout`: the cookie is cleared.
    func logout(_ request: HTTPRequest) throws -> HTTPResponse {
        HTTPResponse(status: 303, headers: [("Location", "/login"), ("Set-Cookie", SessionCookie.clearing(secure: securesCookies))])
    }

    var securesCookies: Bool { config.tls != nil || (config.publicURL?.hasPrefix("https://") ?? false) }
}

/// The names a request's `Host` may give (lower case, without port).
struct AllowedHosts: Sendable {
    let names: Set<String>

    init(config: Config) {
        var names: Set<String> = ["localhost"]
        let listen = config.listen.host.lowercased()
        if listen != "0.0.0.0" { names.insert(listen) }
        if let url = config.publicURL, let host = AllowedHosts.host(ofURL: url) { names.insert(host) }
        self.names = names
    }

    /// `Host: NAME[:PORT]`: one of the names, or any IP address (loopback included).
    func permits(_ header: String) -> Bool {
        var host = Substring(header.lowercased())
        if host.hasPrefix("[") { return host.contains("]") }   // an IPv6 literal
        if let colon = host.lastIndex(of: ":") {
            guard host[host.index(after: colon)...].allSatisfy(\.isNumber) else { return false }
            host = host[..<colon]
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        if names.contains(String(host)) { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) && Int($0)! <= 255 }
    }

    static func host(ofURL url: String) -> String? {
        guard let scheme = url.firstRange(of: "://") else { return nil }
        var rest = url[scheme.upperBound...]
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        if rest.hasPrefix("[") { return rest.firstIndex(of: "]").map { String(rest[...$0]).lowercased() } }
        if let colon = rest.lastIndex(of: ":") { rest = rest[..<colon] }
        return rest.isEmpty ? nil : rest.lowercased()
    }
}

/// Failed authentications per client address: `burst` at once, then one each `every`
/// seconds. Behind a reverse proxy every client has the proxy's address: the proxy should
/// limit too.
final class AuthFailures: Sendable {
    static let burst: Int64 = 20
    static let every: Int64 = 2
    static let tracked = 10_000
    /// Address -> the time its budget is whole again (each failure pushes it `every` later).
    private let whole = Mutex<[String: Int64]>([:])

    func failed(_ address: String, at now: Int64) {
        whole.withLock { whole in
            if whole.count >= AuthFailures.tracked { whole = whole.filter { $0.value > now } }
            whole[address] = max(whole[address] ?? now, now) + AuthFailures.every
        }
    }

    /// Seconds until the address may try again, or nil when it may now.
    func lockedOut(_ address: String, at now: Int64) -> Int64? {
        whole.withLock { whole in
            guard let until = whole[address] else { return nil }
            // Seconds of failures not yet refilled; another fits while it stays within the burst.
            let owed = until - now
            let room = (AuthFailures.burst - 1) * AuthFailures.every
            return owed > room ? owed - room : nil
        }
    }
}
