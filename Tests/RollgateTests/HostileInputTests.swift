@testable import Configuration
@testable import HTTPAPI
@testable import Hooks
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
import HTTPTesting
@testable import RollgateServer
import Rollout

/// rollgate with every door open, as an attacker finds it on the internet: the real binary,
/// a token, GitHub, GitLab, Standard Webhooks and Slack secrets, a 2 s request deadline.
final class OpenDoors: @unchecked Sendable {
    // @unchecked: set up once in init, then only read.
    static let token = "attack-test-token-0123456789"
    static let githubSecret = "attack-github-secret-0123456789"
    static let gitlabToken = "attack-gitlab-token-0123456789"
    static let genericSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let slackSecret = "attack-slack-secret-0123456789"
    let directory: TempDirectory
    let server: RollgateProcess
    let client: HTTPClient

    init(_ directory: TempDirectory, arguments: [String] = [], environment: [String: String] = [:], hook: String = #"echo "deploying $ROLLGATE_VERSION""#,
         launcher: [String] = []) async throws {
        self.directory = directory
        let config = directory.write("doors.yaml", """
            listen: 127.0.0.1:0
            database: \(directory.path)/doors.db
            api_tokens: [{name: ops, token_env: T_TOKEN}]
            github: {secret_env: T_GITHUB}
            gitlab: {token_env: T_GITLAB}
            webhooks: {secret_env: T_GENERIC}
            slack: {signing_secret_env: T_SLACK, admins: [UADMIN1]}
            http: {request_timeout: 2s}
            services:
              - name: web
                simulated: {targets: 2, drain_seconds: 0.2, healthy_seconds: 0.2}
                poll_interval: 100ms
                github: {repository: acme/web, branch: main}
                gitlab: {project: group/web, branch: main}
                slack: {allow: [U1, UADMIN1]}
                hooks: {deploy: \(JSONText.quote(hook))}
            """)
        server = try RollgateProcess(["serve", "--config", config] + arguments, environment: [
            "T_TOKEN": Self.token, "T_GITHUB": Self.githubSecret, "T_GITLAB": Self.gitlabToken, "T_GENERIC": Self.genericSecret,
            "T_SLACK": Self.slackSecret].merging(environment) { _, new in new }, launcher: launcher)
        client = HTTPClient(port: try await server.port())
    }

    var auth: (String, String) { ("Authorization", "Bearer \(Self.token)") }
    var now: Int64 { Int64(Date().timeIntervalSince1970) }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    func github(_ event: String, _ body: String, delivery: String = UUID().uuidString) async throws -> HTTPResponse {
        let signature = "sha256=" + Self.hex(WebhookSignature.hmac(key: Array(Self.githubSecret.utf8), Array(body.utf8)))
        return try await client.request("POST", "/api/v1/hooks/github", headers: [
            ("X-GitHub-Event", event), ("X-GitHub-Delivery", delivery), ("X-Hub-Signature-256", signature)], body: Array(body.utf8))
    }

    func slack(_ text: String, user: String = "U1", name: String = "alice", responseURL: String? = nil,
               upperCase: Bool = false, at timestamp: Int64? = nil) async throws -> HTTPResponse {
        let body = slackBody(text, user: user, name: name, responseURL: responseURL)
        return try await slackSigned(body, upperCase: upperCase, at: timestamp ?? now)
    }

    func slackBody(_ text: String, user: String = "U1", name: String = "alice", responseURL: String? = nil) -> String {
        let encode = { (value: String) in value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "" }
        return "team_id=T1&user_id=\(encode(user))&user_name=\(encode(name))&command=%2Fdeploy&text=\(encode(text))"
            + (responseURL.map { "&response_url=\(encode($0))" } ?? "")
    }

    func slackSigned(_ body: String, upperCase: Bool = false, at timestamp: Int64) async throws -> HTTPResponse {
        var digest = Self.hex(WebhookSignature.hmac(key: Array(Self.slackSecret.utf8), Array("v0:\(timestamp):\(body)".utf8)))
        if upperCase { digest = digest.uppercased() }
        return try await client.request("POST", "/api/v1/hooks/slack", headers: [
            ("X-Slack-Request-Timestamp", "\(timestamp)"), ("X-Slack-Signature", "v0=\(digest)")], body: Array(body.utf8))
    }

    func generic(_ body: String, id: String = "msg_\(UUID().uuidString)", timestamp: String? = nil) async throws -> HTTPResponse {
        let at = timestamp ?? "\(now)"
        let signature = "v1," + WebhookSignature.base64Encode(WebhookSignature.hmac(key: WebhookSignature.standardKey(Self.genericSecret)!,
                                                                                 Array("\(id).\(at).\(body)".utf8)))
        return try await client.request("POST", "/api/v1/hooks/generic", headers: [
            ("webhook-id", id), ("webhook-timestamp", at), ("webhook-signature", signature)], body: Array(body.utf8))
    }

    func runs() async throws -> [JSONValue] {
        json(try await client.request("GET", "/api/v1/runs", headers: [auth]))["runs"]?.array ?? []
    }

    func push(message: String = "fix the thing", pushedAt: Int64? = nil, sha: String = "6113728f27ae82c7b1a177c8d03f9e96e0adf246") -> String {
        JSONValue.object([
            ("ref", .string("refs/heads/main")), ("after", .string(sha)),
            ("repository", .object([("full_name", .string("acme/web")), ("pushed_at", .number(Double(pushedAt ?? now)))])),
            ("sender", .object([("login", .string("octocat"))])),
            ("head_commit", .object([("id", .string(sha)), ("message", .string(message))])),
        ]).text
    }

    /// Waits until a run has ended and returns it (reading with the token).
    func finished(_ id: Int64) async throws -> JSONValue {
        var last = JSONValue.null
        _ = try await eventually(within: .seconds(60)) {
            last = json(try await client.request("GET", "/api/v1/runs/\(id)", headers: [auth]))
            return !["queued", "running"].contains(last["status"]?.string ?? "")
        }
        return last
    }

    func healthy() async throws -> Bool {
        try await client.request("GET", "/healthz").status == 200 && server.process.isRunning
    }

    func stop() { server.kill(SIGTERM) }
}

/// Each attack on the issue's list, against the real binary.
@Suite(.serialized) struct HostileInputTests {
    let directory = TempDirectory()

    @Test func overflowingTimestampsAre401AndTheServerLives() async throws {
        let doors = try await OpenDoors(directory)
        defer { doors.stop() }
        for timestamp in ["-9223372036854775808", "9223372036854775807", "99999999999999999999", "1e10", " 1700000000", "+1700000000",
                          "0x10", "", "1700000000.5", "١٧٠٠٠٠٠٠٠٠"] {
            let generic = try await doors.client.request("POST", "/api/v1/hooks/generic", headers: [
                ("webhook-id", "msg_1"), ("webhook-timestamp", timestamp), ("webhook-signature", "v1,AAAA")], body: Array("{}".utf8))
            #expect(generic.status == 401 || generic.status == 429, "generic \(timestamp): \(generic.status)")
            #expect(json(generic)["error"]?["code"] != nil)
            let slack = try await doors.client.request("POST", "/api/v1/hooks/slack", headers: [
                ("X-Slack-Request-Timestamp", timestamp), ("X-Slack-Signature", "v0=00")], body: Array("text=web+v1".utf8))
            #expect(slack.status == 401 || slack.status == 429, "slack \(timestamp): \(slack.status)")
            #expect(json(slack)["error"]?["code"] != nil)
        }
        // 20 failed signatures from 127.0.0.1 lock it out for a while (429); another address is not.
        var other = doors.client
        other.source = "127.0.0.9"
        // Even with a valid signature over an absurd timestamp: stale, never a crash.
        let body = doors.slackBody("web v1")
        let digest = OpenDoors.hex(WebhookSignature.hmac(key: Array(OpenDoors.slackSecret.utf8), Array("v0:999999999999:\(body)".utf8)))
        let signed = try await other.request("POST", "/api/v1/hooks/slack", headers: [
            ("X-Slack-Request-Timestamp", "999999999999"), ("X-Slack-Signature", "v0=\(digest)")], body: Array(body.utf8))
        #expect(signed.status == 401 && json(signed)["error"]?["message"]?.string?.contains("stale") == true, "\(signed.status) \(json(signed).text)")
        #expect(try await doors.healthy())
        #expect(try await doors.runs().isEmpty)
    }

    @Test func aSlackReplayIsCaughtWhateverCaseItsSignatureIsIn() async throws {
        let doors = try await OpenDoors(directory)
        defer { doors.stop() }
        let at = doors.now
        let body = doors.slackBody("web v42")
        #expect(try await doors.slackSigned(body, at: at).status == 200)
        let replay = try await doors.slackSigned(body, upperCase: true, at: at)
        #expect(replay.status == 401 && json(replay)["error"]?["code"] == .string("replayed"), "\(json(replay).text)")
        // Commands that start no run are replays too.
        let cancel = doors.slackBody("cancel 1")
        #expect(try await doors.slackSigned(cancel, at: at).status == 200)
        #expect(try await doors.slackSigned(cancel, upperCase: true, at: at).status == 401)
        let lock = doors.slackBody("lock web freeze", user: "UADMIN1")
        #expect(json(try await doors.slackSigned(lock, at: at))["text"]?.string?.contains("locked web") == true)
        let unlock = doors.slackBody("unlock web", user: "UADMIN1")
        #expect(try await doors.slackSigned(unlock, at: at).status == 200)
        #expect(try await doors.slackSigned(unlock, at: at).status == 401, "an unlock replayed after a new lock would lift it")
        #expect(try await doors.runs().count == 1)
    }

    @Test func aGitHubPushReplayedWithAFreshDeliveryIDQueuesNothing() async throws {
        let doors = try await OpenDoors(directory)
        defer { doors.stop() }
        let push = doors.push()
        let first = try await doors.github("push", push, delivery: "d-1")
        #expect(first.status == 202, "\(json(first).text)")
        let replay = try await doors.github("push", push, delivery: "d-2-fresh")
        #expect(replay.status == 200 && json(replay)["already_queued"]?.array?.count == 1, "\(json(replay).text)")
        // A push older than max_age (1h) is acknowledged and ignored with the reason.
        let old = try await doors.github("push", doors.push(pushedAt: doors.now - 7200, sha: "a" + String(repeating: "b", count: 39)))
        #expect(old.status == 200)
        #expect(json(old)["ignored"]?.array?.first?.string?.contains("older than max_age") == true, "\(json(old).text)")
        // GitLab: the same body, with or without an event UUID, queues once.
        let gitlab = Array(#"{"object_kind":"push","ref":"refs/heads/main","checkout_sha":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","project":{"path_with_namespace":"group/web"}}"#.utf8)
        #expect(try await doors.client.request("POST", "/api/v1/hooks/gitlab", headers: [("X-Gitlab-Token", OpenDoors.gitlabToken)], body: gitlab).status == 202)
        let again = try await doors.client.request("POST", "/api/v1/hooks/gitlab", headers: [("X-Gitlab-Token", OpenDoors.gitlabToken),
                                                                                                ("X-Gitlab-Event-UUID", "fresh")], body: gitlab)
        #expect(again.status == 200 && json(again)["already_queued"]?.array?.count == 1)
        #expect(try await doors.runs().count == 2)
    }

    @Test func aDeploymentOfAnotherRefIsIgnoredAndACRLFCommitMessageDeploys() async throws {
        let doors = try await OpenDoors(directory)
        defer { doors.stop() }
        func deployment(_ ref: String, id: Int) -> String {
            JSONValue.object([
                ("deployment", .object([("id", .number(Double(id))), ("sha", .string("6113728f27ae82c7b1a177c8d03f9e96e0adf246")),
                                        ("ref", .string(ref)), ("environment", .string("web")),
                                        ("created_at", .string(Timestamp.format(Date())))])),
                ("repository", .object([("full_name", .string("acme/web"))])), ("sender", .object([("login", .string("mallory"))])),
            ]).text
        }
        let offBranch = try await doors.github("deployment", deployment("feature-unreviewed", id: 1))
        #expect(offBranch.status == 200)
        #expect(json(offBranch)["ignored"]?.array?.first?.string?.contains("is not branch main") == true, "\(json(offBranch).text)")
        #expect(try await doors.runs().isEmpty)
        #expect(try await doors.github("deployment", deployment("main", id: 2)).status == 202)
        // A commit message with CRLF and a tab deploys; the reason keeps its first line.
        let crlf = try await doors.github("push", doors.push(message: "fix:\tthe thing\r\n\r\nlonger\u{202E}text", sha: "c" + String(repeating: "d", count: 39)))
        #expect(crlf.status == 202, "\(json(crlf).text)")
        #expect(json(crlf)["queued"]?.array?.first?["reason"] == .string("fix: the thing"))
    }

    @Test func slackAllowListsHoldIDsNotNamesAndLocksNeedAnAdmin() async throws {
        let doors = try await OpenDoors(directory)
        defer { doors.stop() }
        let spoofed = json(try await doors.slack("web v1", user: "U999", name: "U1"))
        #expect(spoofed["text"]?.string?.hasPrefix("You may not deploy") == true, "\(spoofed.text)")
        let notAdmin = json(try await doors.slack("lock web freeze", user: "U1"))
        #expect(notAdmin["text"]?.string?.hasPrefix("Only <@UADMIN1> may lock") == true, "\(notAdmin.text)")
        let spoofedAdmin = json(try await doors.slack("unlock web", user: "U999", name: "UADMIN1"))
        #expect(spoofedAdmin["text"]?.string?.hasPrefix("Only <@UADMIN1> may unlock") == true)
        #expect(try await doors.runs().isEmpty)
        // check-config refuses names in an allow-list.
        let names = directory.write("names.yaml", """
            slack: {signing_secret: "0123456789abcdef0123", admins: [alice]}
            services: [{name: web, simulated: {}, hooks: {deploy: x}, slack: {allow: [U1, bob]}}]
            """)
        let (status, output) = try await RollgateProcess.run(["check-config", names])
        #expect(status == 2 && output.contains("slack.admins") && output.contains("services[0].slack.allow") && output.contains("names are not accepted"), "\(output)")
    }

    @Test func responseURLsGoToSlackOnlyWhateverTheyAreDressedAs() async throws {
        let outside = try await WebhookSink(directory: directory, host: "127.0.0.2", name: "outside")
        defer { outside.stop() }
        let control = try await WebhookSink(directory: directory, name: "control")
        defer { control.stop() }
        let doors = try await OpenDoors(directory, environment: ["ROLLGATE_TEST_LOOPBACK_RESPONSE_URL": "1"])
        defer { doors.stop() }
        let p = outside.port
        let tricks = ["http://localhost:@127.0.0.2:\(p)/x", "https://127.0.0.2:\(p)/x", "http://127.0.0.2:\(p)/x",
                      "http://127.0.0.1:\(control.port)@127.0.0.2:\(p)/x", "https://hooks.slack.com@127.0.0.2:\(p)/x",
                      "http://127.0.0.1:\(p)\\@127.0.0.2:\(p)/x", "HTTP://127.0.0.2:\(p)/x", "https://hooks.slack.com.127.0.0.2.nip.io/x"]
        for (index, trick) in tricks.enumerated() {
            let answer = try await doors.slack("web v\(index + 1)", responseURL: trick)
            #expect(json(answer)["text"]?.string?.contains("queued run") == true, "\(json(answer).text)")
        }
        // The control: a response_url the test switch allows receives the progress.
        _ = try await doors.slack("web v99", responseURL: "http://127.0.0.1:\(control.port)/reply")
        let runs = try await doors.runs()
        let last = try #require(runs.first?["id"]?.int)
        #expect(try await doors.finished(last)["status"] == .string("succeeded"))
        #expect(try await eventually(within: .seconds(20)) { control.records.count >= 2 }, "the allowed sink hears the run")
        #expect(outside.records.isEmpty, "nothing reached 127.0.0.2: \(outside.records.map(\.text))")
        for run in runs {
            let deliveries = json(try await doors.client.request("GET", "/api/v1/runs/\(run["id"]!.int!)/deliveries", headers: [doors.auth]))
            #expect(!deliveries.text.contains("127.0.0.2"), "\(deliveries.text)")
        }
    }

    @Test func anonymousReadsThroughAProxyAndForeignHostsAreRefused() async throws {
        let doors = try await OpenDoors(directory)
        defer { doors.stop() }
        // What nginx's proxy_pass http://127.0.0.1:PORT forwards for an anonymous visitor.
        for path in ["/api/v1/runs", "/api/v1/services", "/api/v1/runs/1/logs", "/metrics", "/status.txt"] {
            let response = try await doors.client.request("GET", path, headers: [("X-Forwarded-For", "203.0.113.7")])
            #expect(response.status == 401, "\(path): \(response.status)")
        }
        let rebound = try HTTPClient.parse(try await doors.client.raw(Array(
            "GET /api/v1/runs HTTP/1.1\r\nHost: evil.example:\(doors.client.port)\r\nAuthorization: Bearer \(OpenDoors.token)\r\nConnection: close\r\n\r\n".utf8)), method: "GET")
        #expect(rebound.status == 421, "DNS rebinding names another host: \(rebound.status)")
        // A browser signs in once and reads the page with its cookie.
        let signIn = try await doors.client.request("POST", "/login", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                                                    body: Array("token=\(OpenDoors.token)".utf8))
        #expect(signIn.status == 303)
        let cookie = try #require(signIn.header("Set-Cookie")?.split(separator: ";").first.map(String.init))
        let page = try await doors.client.request("GET", "/", headers: [("Cookie", cookie), ("Accept", "text/html")])
        #expect(page.status == 200 && String(decoding: page.body, as: UTF8.self).contains("<h1>rollgate</h1>"))
        for header in ["Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"] {
            #expect(page.header(header) != nil, "\(header) on the page")
        }
    }

    @Test func versionsThatArePathsAreRefusedAtEveryDoor() async throws {
        let doors = try await OpenDoors(directory)
        defer { doors.stop() }
        for version in ["/", "/etc/passwd", "a//b", "./x", "x/", "..", "v1/../../x", "-rf", ".hidden", "a/./b"] {
            let api = try await doors.client.request("POST", "/api/v1/deploys", headers: [doors.auth],
                                                     body: JSONValue.object([("service", .string("web")), ("version", .string(version))]).bytes)
            #expect(api.status == 422 && json(api)["error"]?["code"] == .string("invalid_version"), "\(version): \(api.status)")
            let generic = try await doors.generic(JSONValue.object([("service", .string("web")), ("version", .string(version))]).text)
            #expect(generic.status == 422, "generic \(version): \(generic.status)")
            let slack = json(try await doors.slack("web \(version)"))
            #expect(slack["text"]?.string?.contains("is refused") == true, "slack \(version): \(slack.text)")
        }
        #expect(try await doors.runs().isEmpty)
        // Names with slashes that are not paths are fine.
        #expect(try await doors.client.request("POST", "/api/v1/deploys", headers: [doors.auth],
                                               body: Array(#"{"service":"web","version":"release/2026.12+build-7"}"#.utf8)).status == 202)
    }

    @Test func aDribbledRequestIsCutAtItsDeadlineWhileOthersAreServed() async throws {
        let doors = try await OpenDoors(directory)
        defer { doors.stop() }
        let port = doors.client.port
        // One byte every 400 ms never trips the idle timeout: only the request deadline (2 s).
        let cut = try await offPool { () -> (Bool, Int) in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            let head = Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8)
            _ = head.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var sent = 0
            for _ in 0..<50 {   // 20 s at most
                usleep(400_000)
                var byte: UInt8 = UInt8(ascii: "a")
                if send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) <= 0 { return (true, sent) }
                sent += 1
                var probe: UInt8 = 0
                let n = recv(fd, &probe, 1, Int32(MSG_DONTWAIT))
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { return (true, sent) }
            }
            return (false, sent)
        }
        #expect(cut.0, "the dribbling connection was still open after \(cut.1) bytes")
        #expect(cut.1 < 30, "cut near its 2 s deadline, not after \(cut.1) bytes")
        #expect(try await doors.healthy())
    }

    @Test func theAccessLogCannotBeForgedAndSecretsStayOutOfIt() async throws {
        let doors = try await OpenDoors(directory, arguments: ["--access-log"],
                                        environment: ["DATABASE_URL": "postgres://app:hunter2-database-pw@db.internal/rollgate"],
                                        hook: #"echo "deploying $ROLLGATE_VERSION db=[$DATABASE_URL]"; echo "token $T_TOKEN""#)
        defer { doors.stop() }
        _ = try await doors.client.send("GET", "/runs/1%0a2026-01-01T00:00:00.000Z%20critical%20rollgate:%20FORGED", headers: [doors.auth])
        let id = try #require(json(try await doors.client.request("POST", "/api/v1/deploys", headers: [doors.auth],
                                                                  body: Array(#"{"service":"web","version":"v1"}"#.utf8)))["id"]?.int)
        #expect(try await doors.finished(id)["status"] == .string("succeeded"))
        try await Task.sleep(for: .milliseconds(200))
        let log = doors.server.text
        #expect(!log.split(separator: "\n").contains { $0.hasPrefix("2026-01-01T00:00:00.000Z critical") }, "a forged line: \(log)")
        #expect(log.contains("\\u{A}2026-01-01T00:00:00.000Z"), "the newline is shown escaped")
        #expect(!log.contains("hunter2-database-pw") && !log.contains(OpenDoors.token), "secrets in rollgate's log")
        let lines = json(try await doors.client.request("GET", "/api/v1/runs/\(id)/logs", headers: [doors.auth]))["lines"]?.array ?? []
        let texts = lines.compactMap { $0["text"]?.string }
        #expect(texts.contains("deploying v1 db=[]"), "a URL with a password is not passed to hooks: \(texts)")
        #expect(!texts.joined().contains(OpenDoors.token))
    }

    @Test func theDatabaseItsLogAndBackupsAreOwnerOnly() async throws {
        let doors = try await OpenDoors(directory)
        _ = try await doors.client.request("POST", "/api/v1/deploys", headers: [doors.auth], body: Array(#"{"service":"web","version":"v1"}"#.utf8))
        let database = directory.path + "/doors.db"
        let backup = directory.path + "/copy.db"
        let (status, output) = try await RollgateProcess.run(["backup", backup, "--database", database])
        #expect(status == 0, "\(output)")
        for file in [database, database + "-wal", database + "-shm", backup] {
            var info = stat()
            #expect(stat(file, &info) == 0, "\(file) exists")
            #expect(info.st_mode & 0o077 == 0, "\(file) is \(String(info.st_mode & 0o777, radix: 8))")
        }
        doors.stop()
    }

    @Test func aHookRunningAsTheSameUserCannotReadRollgatesEnvironment() async throws {
        // rollgate as `nobody` (root could read any process's environment), its hook as nobody too.
        let shared = TempDirectory()
        chmod(shared.path, 0o777)
        let hook = #"if cat /proc/$PPID/environ >/dev/null 2>&1; then echo "PARENT-ENVIRON-READABLE"; else echo "PARENT-ENVIRON-SEALED"; fi; "#
            + #"if cat /proc/self/environ >/dev/null 2>&1; then echo "OWN-ENVIRON-READABLE"; fi; id -un"#
        let doors = try await OpenDoors(shared, hook: hook, launcher: ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        defer { doors.stop() }
        let id = try #require(json(try await doors.client.request("POST", "/api/v1/deploys", headers: [doors.auth],
                                                                  body: Array(#"{"service":"web","version":"v1"}"#.utf8)))["id"]?.int)
        #expect(try await doors.finished(id)["status"] == .string("succeeded"))
        let texts = (json(try await doors.client.request("GET", "/api/v1/runs/\(id)/logs", headers: [doors.auth]))["lines"]?.array ?? [])
            .compactMap { $0["text"]?.string }
        #expect(texts.contains("nobody"), "the hook ran as nobody: \(texts)")
        #expect(texts.contains("OWN-ENVIRON-READABLE"), "the check can see an environment it may read")
        #expect(texts.contains("PARENT-ENVIRON-SEALED") && !texts.contains("PARENT-ENVIRON-READABLE"), "\(texts)")
    }

    /// libmicrohttpd 0.9.75 keeps header values as C strings: a value ends at a NUL, and what
    /// follows never reaches rollgate. Two keys that differ only after a NUL are one key, so
    /// the second request is refused as a reuse with another body, never deployed.
    @Test func aNULInAHeaderAndAMalformedLengthAreRefusedCleanly() async throws {
        let doors = try await OpenDoors(directory)
        defer { doors.stop() }
        func deploy(_ version: String, key tail: String) async throws -> HTTPResponse {
            let body = #"{"service":"web","version":"\#(version)"}"#
            let request = Array("POST /api/v1/deploys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(OpenDoors.token)\r\nIdempotency-Key: key".utf8)
                + [0] + Array("\(tail)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
            return try HTTPClient.parse(try await doors.client.raw(request), method: "POST")
        }
        #expect(try await deploy("v1", key: "one").status == 202)
        let other = try await deploy("v2", key: "two")
        #expect(other.status == 422 && json(other)["error"]?["code"] == .string("idempotency_key_reused"), "\(json(other).text)")
        #expect(try await doors.runs().count == 1)
        for length in ["-5", "99999999999999999999999", "5x", "+5"] {
            let bytes = try await doors.client.raw(Array("POST /api/v1/deploys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(length)\r\n\r\n".utf8))
            #expect(HTTPFraming.split(bytes)?.count == 1, "Content-Length \(length): \(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(try await doors.runs().count == 1)
        #expect(try await doors.healthy())
    }
}
