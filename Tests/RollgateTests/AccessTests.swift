@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import Page
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
@testable import RollgateServer
import Rollout
import RolloutTesting

/// Who may read and from where: reads closed once a config is given, sessions from /login,
/// the Host a request names, failed authentications limited per address.
@Suite struct AccessTests {
    let directory = TempDirectory()
    let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
    static let viewer = "viewer-token-0123456789"
    static let deployer = "deploy-token-0123456789"

    func app(publicRead: Bool = false, publicURL: String? = nil, tokens: [APIToken]? = nil) throws -> App {
        var config = Config(database: directory.path + "/access-\(UUID().uuidString).db",
                            apiTokens: tokens ?? [APIToken(name: "viewer", secret: Self.viewer, scopes: [.read]),
                                                  APIToken(name: "ci", secret: Self.deployer, scopes: [.deploy])],
                            services: [quickService("web")])
        config.publicRead = publicRead
        config.publicURL = publicURL
        return try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                       environment: [:], logger: .quiet, clock: clock)
    }

    @Test func aConfiguredServerOnLoopbackStillNeedsATokenToRead() async throws {
        let app = try app()
        // What a reverse proxy in front of 127.0.0.1:8080 forwards: an anonymous request.
        for path in ["/api/v1/runs", "/api/v1/services", "/api/v1/events", "/metrics", "/status.txt", "/api/v1/runs/1/deliveries"] {
            let response = await app.call("GET", path, headers: ["Host": "127.0.0.1:8080", "X-Forwarded-For": "203.0.113.9"])
            #expect(response.status == 401, "\(path): \(response.status)")
            #expect(json(response)["error"]?["code"] == .string("unauthorized"))
        }
        #expect(await app.call("GET", "/api/v1/runs", headers: ["Authorization": "Bearer \(Self.viewer)"]).status == 200)
        #expect(await app.call("GET", "/api/v1/runs", headers: ["Authorization": "bearer \(Self.viewer)"]).status == 200,
                "the scheme is case-insensitive")
        #expect(await app.call("GET", "/api/v1/runs", headers: ["Authorization": "Bearer \(Self.deployer)"]).status == 403)
        #expect(await app.call("GET", "/healthz").status == 200, "liveness stays open")
        // A browser is sent to sign in; the page's script and style are open (they hold no data).
        let page = await app.call("GET", "/", headers: ["Accept": "text/html"])
        #expect(page.status == 303 && page.header("Location") == "/login")
        #expect(await app.call("GET", "/style.css").status == 200)
        #expect(try await self.app(publicRead: true).call("GET", "/api/v1/runs").status == 200, "public_read: true opens reads")
    }

    @Test func theDemoStaysOpen() async throws {
        let app = try App(config: Config.demo(database: directory.path + "/demo.db"), migrationsDirectory: migrationsDirectory,
                          publicDirectory: publicDirectory, environment: [:], logger: .quiet, clock: clock)
        #expect(await app.call("GET", "/api/v1/runs").status == 200)
    }

    func session(_ app: App, token: String) async -> (HTTPResponse, String?) {
        let response = await app.call("POST", "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"],
                                      body: "token=\(token)")
        let cookie = response.header("Set-Cookie")?.split(separator: ";").first.map(String.init)
        return (response, cookie)
    }

    @Test func aBrowserSignsInOnceAndItsSessionOnlyReads() async throws {
        let app = try app()
        let form = await app.call("GET", "/login")
        #expect(form.status == 200 && String(decoding: form.body, as: UTF8.self).contains("<form method=\"post\" action=\"/login\">"))
        let (signedIn, cookie) = await session(app, token: Self.viewer)
        #expect(signedIn.status == 303 && signedIn.header("Location") == "/")
        let setCookie = signedIn.header("Set-Cookie") ?? ""
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] { #expect(setCookie.contains(attribute), "\(setCookie)") }
        #expect(!setCookie.contains("Secure"), "plain http: no Secure flag")
        let withCookie = ["Cookie": "theme=dark; \(cookie ?? "")"]
        #expect(await app.call("GET", "/api/v1/runs", headers: withCookie).status == 200)
        #expect(await app.call("GET", "/", headers: withCookie.merging(["Accept": "text/html"]) { a, _ in a }).status == 200)
        // The session reads only: a write still needs a bearer token.
        #expect(await app.call("POST", "/api/v1/deploys", headers: withCookie, body: #"{"service":"web","version":"v1"}"#).status == 401)
        // A bad token is the form again with a 401; a deploy-only token has no read scope.
        #expect(await session(app, token: "wrong-token-0123456789").0.status == 401)
        #expect(await session(app, token: Self.deployer).0.status == 403)
        // Forged, tampered or expired cookies read nothing.
        let value = String(cookie?.dropFirst("rollgate_session=".count) ?? "")
        let tampered = value.replacingOccurrences(of: ".read.", with: ".admin+deploy+read.")
        #expect(await app.call("GET", "/api/v1/runs", headers: ["Cookie": "rollgate_session=\(tampered)"]).status == 401)
        clock.advance(by: .seconds(SessionCookie.lifetime + 1))
        #expect(await app.call("GET", "/api/v1/runs", headers: withCookie).status == 401, "expired")
        // Signed out: the cookie is cleared.
        let out = await app.call("POST", "/logout")
        #expect(out.status == 303 && out.header("Set-Cookie")?.contains("Max-Age=0") == true)
    }

    @Test func aSessionDiesWithItsTokenAndNeverOutgrowsIt() throws {
        let token = APIToken(name: "viewer", secret: Self.viewer, scopes: [.read, .deploy])
        let cookie = SessionCookie(tokenName: "viewer", scopes: [.read, .deploy], expires: 2_000)
        let value = cookie.value(signedWith: token.secret)
        #expect(SessionCookie.verify(value, tokens: [token], now: 1_000)?.scopes == [.read, .deploy])
        #expect(SessionCookie.verify(value, tokens: [], now: 1_000) == nil, "the token was removed from the config")
        #expect(SessionCookie.verify(value, tokens: [APIToken(name: "viewer", secret: "rotated-secret-0123456789")], now: 1_000) == nil,
                "the token's secret changed")
        let narrowed = APIToken(name: "viewer", secret: Self.viewer, scopes: [.read])
        #expect(SessionCookie.verify(value, tokens: [narrowed], now: 1_000)?.scopes == [.read], "scopes the token lost are gone")
        #expect(SessionCookie.verify(value, tokens: [token], now: 2_000) == nil, "expired")
        #expect(SessionCookie.verify("v1.zz.1.read.00", tokens: [token], now: 1_000) == nil)
        #expect(SessionCookie.verify(String(repeating: "a", count: 10_000), tokens: [token], now: 1_000) == nil)
        #expect(cookie.header(signedWith: token.secret, secure: true).hasSuffix("; Secure"))
    }

    @Test func theHostMustNameThisServer() async throws {
        let app = try app(publicRead: true, publicURL: "https://deploy.example.com")
        for host in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST", "deploy.example.com", "deploy.example.com:443", "10.1.2.3:8080", "[::1]:8080"] {
            #expect(await app.call("GET", "/api/v1/runs", headers: ["Host": host]).status == 200, "\(host)")
        }
        // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
        for host in ["evil.example", "evil.example:8080", "deploy.example.com.evil.example", "127.0.0.1.nip.io", "localhost:80x"] {
            let response = await app.call("GET", "/api/v1/runs", headers: ["Host": host])
            #expect(response.status == 421, "\(host)")
            #expect(json(response)["error"]?["code"] == .string("misdirected_request"))
        }
        #expect(await app.call("GET", "/healthz", headers: ["Host": "evil.example"]).status == 200,
                "a load balancer's health check names the target's address")
    }

    @Test func failedAuthenticationsAreLimitedPerAddress() async throws {
        let app = try app()
        func attempt(_ token: String, from address: UInt32) async -> HTTPResponse {
            var request = HTTPRequest(method: "GET", path: "/api/v1/runs", headers: ["Authorization": "Bearer \(token)"])
            request.clientIPv4 = address
            return await app.router.handle(request)
        }
        let attacker: UInt32 = 0x7F00_0002, bystander: UInt32 = 0x7F00_0003
        for _ in 0..<Int(AuthFailures.burst) {
            #expect(await attempt("guess-0123456789abcdef", from: attacker).status == 401)
        }
        let limited = await attempt("guess-0123456789abcdef", from: attacker)
        #expect(limited.status == 429 && limited.header("Retry-After") != nil)
        #expect(json(limited)["error"]?["code"] == .string("too_many_failed_authentications"))
        #expect(await attempt(Self.viewer, from: attacker).status == 429, "locked out, even with a good token")
        #expect(await attempt(Self.viewer, from: bystander).status == 200, "another address is not")
        clock.advance(by: .seconds(2 * AuthFailures.every))
        #expect(await attempt(Self.viewer, from: attacker).status == 200, "the budget refills")
    }

    @Test func pagesCarrySecurityHeadersAndEscapeByScalar() async throws {
        let app = try app(publicRead: true)
        for path in ["/", "/login", "/status.js"] {
            let page = await app.call("GET", path)
            #expect(page.header("Content-Security-Policy")?.contains("default-src 'self'; frame-ancestors 'none'") == true, "\(path)")
            #expect(page.header("X-Content-Type-Options") == "nosniff")
            #expect(page.header("Referrer-Policy") == "same-origin")
        }
        #expect(await app.call("GET", "/api/v1/runs").header("X-Content-Type-Options") == "nosniff")
        #expect(escape("<\u{301}script \"\u{301}x") == "&lt;\u{301}script &quot;\u{301}x")
        #expect(VisibleText.escape("ok\u{1B}[2J\rFORGED\n\u{202E}x", keeping: ["\n"]) == "ok\\u{1B}[2J\\u{D}FORGED\n\\u{202E}x")
    }
}
