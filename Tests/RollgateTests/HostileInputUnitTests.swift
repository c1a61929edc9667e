@testable import Configuration
@testable import HTTPAPI
@testable import Hooks
@testable import Integrations
@testable import Page
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
import HTTPTesting
import Outbound
@testable import RollgateServer
import Rollout

/// The pieces of issue 16 that need no server: parsing with bounds, the version rule, what
/// people read, what is masked, where rollgate may send, and the config's new rules.
@Suite struct HostileInputUnitTests {
    @Test func signedTimestampsAreDigitsOnlyAndNeverOverflow() {
        for text in ["-9223372036854775808", "9223372036854775807", "1234567890123", "", " 1", "+1", "1.0", "1e9", "١"] {
            #expect(WebhookSignature.unixSeconds(text) == nil, "\(text)")
        }
        #expect(WebhookSignature.unixSeconds("999999999999") == 999_999_999_999)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        // A malformed timestamp is refused before any arithmetic; a good signature over a far one is stale.
        #expect(WebhookSignature.slack(body: [], timestamp: "-9223372036854775808", signature: "v0=00", secret: "s", now: now)
                == .malformed("X-Slack-Request-Timestamp (expected 1-12 digits)"))
        let body = Array("text=x".utf8)
        let far = "v0=" + WebhookSignature.hmac(key: Array("s".utf8), WebhookSignature.slackSignedBytes(body: body, timestamp: "999999999999"))
            .map { String(format: "%02x", $0) }.joined()
        if case .stale = WebhookSignature.slack(body: body, timestamp: "999999999999", signature: far, secret: "s", now: now) {} else {
            Issue.record("a far timestamp with a good signature is stale")
        }
        // A wrong signature is a mismatch whatever the timestamp says: the signature is checked first.
        #expect(WebhookSignature.slack(body: body, timestamp: "1", signature: "v0=00", secret: "s", now: now) == .mismatch)
        #expect(WebhookSignature.standard(body: [], id: String(repeating: "i", count: 300), timestamp: "1", signatures: "v1,AA",
                                          secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now: now) == .malformed("webhook-id (at most 256 bytes)"))
    }

    @Test func numbersFromASignedPayloadNeverTrap() {
        for text in ["1e400", "-1e400", "9.3e18", "-9.3e18", "1.5", "1e-400"] {
            #expect(JSONValue.parse(Array(text.utf8))?.int == nil || text == "1e-400", "\(text)")
        }
        #expect(JSONValue.parse(Array("42".utf8))?.int == 42)
        #expect(JSONValue.number(.infinity).text == "null" && JSONValue.number(.nan).text == "null", "JSON has no inf or nan")
        #expect(GitHubTime.seconds(.number(1e300)) == nil && GitHubTime.seconds(.string("2026-13-01T00:00:00Z")) == nil)
        #expect(GitHubTime.parse("2026-12-05T21:00:00Z") == 1_796_504_400)
        #expect(GitHubTime.parse("2026-12-05T22:00:00.123+01:00") == 1_796_504_400)
        #expect(DurationText.parse(String(repeating: "366d", count: 100)) == nil)
    }

    @Test(arguments: [
        ("v42", true), ("1a2b3c4d", true), ("release/2026.12+build-7", true), ("v1..2", true), ("a_b", true),
        ("/", false), ("/etc/passwd", false), ("a//b", false), ("./x", false), ("x/", false), ("..", false), ("v1/../x", false),
        ("a/./b", false), ("-rf", false), (".hidden", false), ("_x", false), ("", false), ("v 1", false), ("v1;rm", false),
        (String(repeating: "a", count: 128), true), (String(repeating: "a", count: 129), false),
    ])
    func versionsAreNamesNeverPaths(_ version: String, _ valid: Bool) {
        #expect(Version.isValid(version) == valid, "\(version)")
    }

    @Test func whatPeopleReadCannotBeDrivenByWhatTheyRead() {
        #expect(VisibleText.escape("a\nb\u{1B}[31m\u{9B}c\u{202E}d") == "a\\u{A}b\\u{1B}[31m\\u{9B}c\\u{202E}d")
        #expect(VisibleText.flattened("fix:\tthing\r\n\u{2067}x") == "fix: thing   x")
        #expect(firstLine("fix: the thing\r\n\r\nlong body") == "fix: the thing")
        #expect(firstLine(String(repeating: "x", count: 500)).count == 200)
    }

    @Test func urlsWithPasswordsAreMaskedAndWithheldFromHooks() {
        let server = ["DATABASE_URL": "postgres://app:hunter2-pw@db.internal:5432/x", "REDIS_URL": "redis://cache:6379", "PATH": "/bin"]
        let hooks = HookEnvironment(server: server, config: Config(services: []))
        #expect(HookEnvironment.urlPassword("postgres://app:hunter2-pw@db/x") == "hunter2-pw")
        #expect(HookEnvironment.urlPassword("https://example.com/a@b") == nil, "an @ in the path is no user-info")
        #expect(hooks.base(passing: []).keys.sorted() == ["PATH", "REDIS_URL"])
        #expect(hooks.base(passing: ["DATABASE_URL"])["DATABASE_URL"] != nil, "hook_env still passes it")
        let mask = hooks.mask(config: Config(services: []))
        #expect(mask.apply("dsn postgres://app:hunter2-pw@db.internal:5432/x pw=hunter2-pw") == "dsn *** pw=***")
    }

    @Test func slackReplyURLsAreSlacksOnly() {
        for url in ["https://hooks.slack.com/commands/T1/1/x", "https://hooks.slack.com/actions/a"] {
            #expect(SlackResponseURL.isAllowed(url, loopbackForTests: false), "\(url)")
        }
        for url in ["https://hooks.slack.com.evil.example/x", "https://hooks.slack.com@evil.example/x", "http://hooks.slack.com/x",
                    "https://HOOKS.slack.com/x", "https://hooks.slack.com:8443/x", "http://localhost:@192.0.2.2:18590/x",
                    "https://evil.example/x", "http://127.0.0.1:80/x", "https://hooks.slack.com/x\r\nHost: evil", "https://hooks.slack.com/x y"] {
            #expect(!SlackResponseURL.isAllowed(url, loopbackForTests: false), "\(url)")
        }
        #expect(SlackResponseURL.isAllowed("http://127.0.0.1:8080/reply", loopbackForTests: true))
        for url in ["http://127.0.0.1:@127.0.0.2:80/x", "http://127.0.0.1:80@127.0.0.2/x", "http://127.0.0.2:80/x", "http://127.0.0.1:80"] {
            #expect(!SlackResponseURL.isAllowed(url, loopbackForTests: true), "\(url)")
        }
    }

    @Test func theConfigRefusesNamesWhereIDsBelongAndTokensThatShareAName() throws {
        // A loader keeps what it found: a fresh one for each file.
        var loader: ConfigLoader { ConfigLoader(environment: ["A": "token-a-0123456789abc", "B": "token-b-0123456789abc", "S": "slack-secret-0123456789"]) }
        let service = "services: [{name: web, simulated: {}, hooks: {deploy: x}}]"
        #expect(throws: ConfigErrors.self) { _ = try loader.parse("api_tokens: [{name: ci, token_env: A}, {name: ci, token_env: B}]\n" + service) }
        #expect(throws: ConfigErrors.self) { _ = try loader.parse("slack: {signing_secret_env: S, admins: [alice]}\n" + service) }
        #expect(throws: ConfigErrors.self) { _ = try loader.parse("services: [{name: web, simulated: {}, hooks: {deploy: x}, slack: {allow: [bob]}}]") }
        let config = try loader.parse("""
            slack: {signing_secret_env: S, admins: [U024BE7LH, W012A3CDE]}
            github: {secret_env: A, max_age: 10m}
            http: {request_timeout: 5s}
            \(service)
            """)
        #expect(config.slackAdmins == ["U024BE7LH", "W012A3CDE"])
        #expect(config.githubMaxAge == .seconds(600))
        #expect(config.connections.requestTimeout == .seconds(5))
        #expect(!config.readsAreOpen, "a config closes reads")
        #expect(throws: ConfigErrors.self) { _ = try loader.parse("http: {request_timeout: 2h}\n" + service) }
    }

    @Test func outboundHeadersWithLineBreaksAreRefusedAndAnswersAreCapped() async throws {
        var router = Router()
        router.get("/big", immediate: { _ in .json(200, [UInt8](repeating: 32, count: 200_000)) })
        router.get("/small", immediate: { _ in .json(200, Array("{}".utf8)) })
        let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0), router: router)
        try server.start()
        let http = CurlHTTP()
        let base = "http://127.0.0.1:\(server.port)"
        await #expect(throws: OutboundError.self) {
            _ = try await http.send(OutboundRequest(method: "GET", url: base + "/small", headers: [("X-A", "v\r\nX-Injected: 1")]))
        }
        await #expect(throws: OutboundError.self) {
            _ = try await http.send(OutboundRequest(method: "GET", url: base + "/big", maxResponseBytes: 64 << 10))
        }
        #expect(try await http.send(OutboundRequest(method: "GET", url: base + "/big")).body.count == 200_000)
        await server.stop()
    }
}
