@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
import HTTPTesting
@testable import RollgateServer
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore

/// The webhook endpoints through the router, with GitHub's real payloads (octokit/webhooks)
/// signed as each provider signs; the dispatcher is not started, so runs stay queued.
@Suite struct WebhookAPITests {
    let directory = TempDirectory()
    let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
    let app: App
    static let githubSecret = "github-secret-0123456789"
    static let gitlabToken = "gitlab-token-0123456789"
    static let genericSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let slackSecret = "slack-signing-secret-0123456789"

    init() throws {
        var web = quickService("web")
        web.triggers = ServiceTriggers(github: .init(repository: "codertocat/hello-world", branch: "master", environment: "production"),
                                       gitlab: .init(repository: "group/web", branch: "main"), slackAllow: ["U1"])
        var config = Config(database: directory.path + "/hooks.db", services: [web, quickService("api")])
        config.slackAdmins = ["U1"]
        config.publicURL = "http://deploy.example.com"
        // octokit's examples were pushed in 2019: max_age has its own tests (HostileInputTests).
        config.githubMaxAge = .seconds(20 * 365 * 86_400)
        config.webhooks = WebhookSecrets(github: Self.githubSecret, gitlab: Self.gitlabToken, generic: Self.genericSecret, slack: Self.slackSecret)
        app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                      environment: [:], logger: .quiet, clock: clock)
    }

    static func fixture(_ name: String) -> String {
        (try? String(contentsOfFile: repositoryRoot + "/Tests/RollgateTests/Fixtures/github/\(name).json", encoding: .utf8)) ?? ""
    }

    func github(_ event: String, _ body: String, delivery: String = UUID().uuidString, secret: String = githubSecret) async -> HTTPResponse {
        let signature = "sha256=" + WebhookSignature.hmac(key: Array(secret.utf8), Array(body.utf8)).map { String(format: "%02x", $0) }.joined()
        return await app.call("POST", "/api/v1/hooks/github", headers: [
            "X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature,
            "Content-Type": "application/json"], body: body)
    }

    var runs: [Run] { (try? app.store.runs(RunFilter())) ?? [] }

    @Test func aPushToTheMappedBranchDeploysTheHeadCommitOnceEvenWhenRedelivered() async throws {
        let push = Self.fixture("push-branch")
        let response = await github("push", push, delivery: "delivery-1")
        #expect(response.status == 202, "\(json(response).text)")
        let run = try #require(json(response)["queued"]?.array?.first)
        #expect(run["service"] == .string("web"))
        #expect(run["version"] == .string("6113728f27ae82c7b1a177c8d03f9e96e0adf246"))
        #expect(run["requested_by"] == .string("github:Codertocat (push Codertocat/Hello-World@6113728)"))
        let again = await github("push", push, delivery: "delivery-1")
        #expect(again.status == 200)
        #expect(json(again)["already_queued"] == .array([run["id"]!]))
        #expect(runs.count == 1, "a redelivery never deploys twice")
    }

    @Test func otherBranchesTagsEventsAndPingsAreAcknowledgedAndIgnored() async throws {
        let feature = Self.fixture("push-branch").replacingOccurrences(of: "\"ref\": \"refs/heads/master\"", with: "\"ref\": \"refs/heads/feature\"")
        let other = await github("push", feature)
        #expect(other.status == 200)
        #expect(json(other)["ignored"] == .array([.string("no service deploys Codertocat/Hello-World branch feature")]))
        let tag = await github("push", Self.fixture("push-tag-deleted"))
        #expect(tag.status == 200 && json(tag)["ignored"]?.array?.first?.string?.contains("not to a branch") == true)
        let issue = await github("issues", #"{"action":"opened"}"#)
        #expect(issue.status == 200 && json(issue)["ignored"] == .array([.string("issues events do not deploy")]))
        let ping = await github("ping", Self.fixture("ping"))
        #expect(ping.status == 200 && json(ping)["pong"]?.string?.isEmpty == false)
        #expect(runs.isEmpty)
    }

    @Test func aDeploymentEventDeploysItsShaToTheServiceOfThatEnvironment() async throws {
        let response = await github("deployment", Self.fixture("deployment"))
        #expect(response.status == 202, "\(json(response).text)")
        let run = try #require(json(response)["queued"]?.array?.first)
        #expect(run["version"] == .string("f95f852bd8fca8fcc58a9a2d6c842781e32a215e"))
        #expect(run["requested_by"] == .string("github:Codertocat (deployment 145988746 of Codertocat/Hello-World@f95f852 to production)"))
    }

    @Test func forgedAndUnsignedGitHubDeliveriesAre401AndQueueNothing() async {
        #expect(await github("push", Self.fixture("push-branch"), secret: "not-the-secret-0123456").status == 401)
        let unsigned = await app.call("POST", "/api/v1/hooks/github", headers: ["X-GitHub-Event": "push", "X-GitHub-Delivery": "x"],
                                      body: Self.fixture("push-branch"))
        #expect(unsigned.status == 401)
        #expect(json(unsigned)["error"]?["message"] == .string("X-Hub-Signature-256: the X-Hub-Signature-256 header is missing"))
        #expect(runs.isEmpty)
    }

    @Test func withoutASecretEveryWebhookEndpointIs404() async throws {
        let config = Config(database: directory.path + "/closed.db", services: [quickService("web")])
        let closed = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                             environment: [:], logger: .quiet)
        for path in ["github", "gitlab", "generic", "slack"] {
            let response = await closed.call("POST", "/api/v1/hooks/\(path)", body: "{}")
            #expect(response.status == 404, "\(path)")
            #expect(json(response)["error"]?["code"] == .string("not_configured"))
        }
    }

    @Test func aGitLabPushWithTheRightTokenDeploys() async throws {
        let push = #"{"object_kind":"push","ref":"refs/heads/main","checkout_sha":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","user_username":"jsmith","project":{"path_with_namespace":"group/web"},"commits":[{"message":"Fix the login\n\nLonger text"}]}"#
        #expect(await app.call("POST", "/api/v1/hooks/gitlab", headers: ["X-Gitlab-Token": "wrong-token-0123456789"], body: push).status == 401)
        #expect(await app.call("POST", "/api/v1/hooks/gitlab", body: push).status == 401)
        let response = await app.call("POST", "/api/v1/hooks/gitlab", headers: ["X-Gitlab-Token": Self.gitlabToken], body: push)
        #expect(response.status == 202)
        let run = try #require(json(response)["queued"]?.array?.first)
        #expect(run["requested_by"] == .string("gitlab:jsmith (push group/web@da15608)"))
        #expect(run["reason"] == .string("Fix the login"))
    }

    func generic(_ body: String, id: String = "msg_\(UUID().uuidString)", at seconds: Int64? = nil) async -> HTTPResponse {
        let timestamp = seconds ?? Int64(clock.now.timeIntervalSince1970)
        let signature = WebhookSignature.standardHeader(body: Array(body.utf8), id: id, timestamp: timestamp, secret: Self.genericSecret)!
        return await app.call("POST", "/api/v1/hooks/generic", headers: [
            "webhook-id": id, "webhook-timestamp": "\(timestamp)", "webhook-signature": signature], body: body)
    }

    @Test func aSignedGenericWebhookDeploysAndAReplayOrAStaleOneIsRefused() async throws {
        let body = #"{"service":"api","version":"build-77","reason":"nightly","requested_by":"jenkins"}"#
        let response = await generic(body, id: "msg_1")
        #expect(response.status == 202)
        #expect(json(response)["queued"]?.array?.first?["requested_by"] == .string("webhook:jenkins (msg_1)"))
        let replay = await generic(body, id: "msg_1")
        #expect(replay.status == 401)
        #expect(json(replay)["error"]?["code"] == .string("replayed"))
        let stale = await generic(body, id: "msg_2", at: Int64(clock.now.timeIntervalSince1970) - 301)
        #expect(stale.status == 401)
        #expect(json(stale)["error"]?["message"]?.string?.contains("stale") == true)
        #expect(await generic(#"{"service":"api","version":"v1","extra":1}"#).status == 422)
        #expect(runs.count == 1)
    }

    func slack(_ text: String, user: String = "U1", name: String = "alice", at seconds: Int64? = nil) async -> HTTPResponse {
        let body = "token=x&team_id=T1&user_id=\(user)&user_name=\(name)&command=%2Fdeploy&text=\(text.replacingOccurrences(of: " ", with: "+"))&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F1%2Fx"
        let timestamp = "\(seconds ?? Int64(clock.now.timeIntervalSince1970))"
        let signature = "v0=" + WebhookSignature.hmac(key: Array(Self.slackSecret.utf8), Array("v0:\(timestamp):\(body)".utf8))
            .map { String(format: "%02x", $0) }.joined()
        return await app.call("POST", "/api/v1/hooks/slack", headers: [
            "X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature, "Host": "deploy.example.com"], body: body)
    }

    @Test func theSlashCommandDeploysCancelsLocksAndAnswersWithinTheRules() async throws {
        let deployed = await slack("web v42 hot fix")
        #expect(deployed.status == 200)
        #expect(json(deployed)["response_type"] == .string("in_channel"))
        #expect(json(deployed)["text"] == .string("<@U1> queued run 1: deploy web v42 (hot fix). http://deploy.example.com/api/v1/runs/1"))
        #expect(runs.first?.requestedBy == "slack:U1 (alice)")
        #expect(runs.first?.reason == "hot fix")

        let stranger = await slack("web v43", user: "U9", name: "mallory")
        #expect(json(stranger)["response_type"] == .string("ephemeral"))
        #expect(json(stranger)["text"]?.string?.hasPrefix("You may not deploy, cancel or promote web") == true)
        #expect(json(await slack("api v1", user: "U9", name: "mallory"))["text"]?.string?.contains("queued run 2") == true,
                "api has no allow-list")

        let status = json(await slack("status web"))["text"]?.string ?? ""
        #expect(status.contains("*web*: no good version yet; queued 1"), "\(status)")
        #expect(json(await slack("promote 1"))["text"] == .string("web has no canary: there is no bake to end."))
        #expect(json(await slack("promote 99"))["text"] == .string("There is no run 99."))
        #expect(json(await slack("cancel 1"))["text"]?.string?.contains("asked to cancel run 1 (web v42): cancelled before it started") == true)
        #expect(json(await slack("lock web release freeze"))["text"] == .string("<@U1> locked web: release freeze. Deploys are refused until `/deploy unlock web`."))
        #expect(json(await slack("web v44"))["text"]?.string?.hasPrefix("web is locked by slack:U1 (alice): release freeze") == true)
        #expect(json(await slack("unlock web", name: "bob"))["text"] == .string("<@U1> unlocked web."))
        #expect(json(await slack("web --help"))["text"]?.string?.contains("is refused: a version is 1-128 of") == true)
        #expect(json(await slack("nonsense"))["text"]?.string?.hasPrefix("usage:") == true)
        // One call: the same signed bytes twice would be a replay.
        let help = json(await slack("help"))["text"]?.string ?? ""
        #expect(help.contains("/deploy lock SERVICE REASON") && help.contains("/deploy promote RUN"))
        #expect(runs.count == 2)
    }

    @Test func forgedStaleOrReplayedSlackCommandsAre401() async throws {
        #expect(await slack("web v42", at: Int64(clock.now.timeIntervalSince1970) - 301).status == 401)
        let unsigned = await app.call("POST", "/api/v1/hooks/slack", headers: ["X-Slack-Request-Timestamp": "\(Int64(clock.now.timeIntervalSince1970))"],
                                      body: "text=web+v42")
        #expect(unsigned.status == 401)
        let first = await slack("web v42")
        #expect(first.status == 200)
        let replay = await slack("web v42")   // the same bytes, timestamp and signature
        #expect(replay.status == 401)
        #expect(runs.count == 1)
    }
}

/// The real binary: a signed GitHub push, a GitLab push, a Standard Webhooks call and a Slack
/// command each produce a run that rolls.
@Suite(.serialized) struct WebhookBinaryTests {
    let directory = TempDirectory()

    @Test func everySignedDoorProducesARunThatRolls() async throws {
        let config = directory.write("hooks.yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(directory.path)/hooks.db
            github: {secret_env: GH_SECRET}
            gitlab: {token_env: GL_TOKEN}
            webhooks: {secret_env: WH_SECRET}
            slack: {signing_secret_env: SLACK_SECRET}
            services:
              - name: web
                simulated: {targets: 2, drain_seconds: 0.2, healthy_seconds: 0.2}
                poll_interval: 100ms
                github: {repository: Codertocat/Hello-World, branch: master}
                gitlab: {project: group/web, branch: main}
                hooks:
                  # Run 1 rolls until the test says go: the others arrive while it runs.
                  deploy: echo "deploying $ROLLGATE_VERSION"; [ "$ROLLGATE_RUN_ID" != 1 ] || while [ ! -f \(directory.path)/go ]; do sleep 0.1; done
            """)
        let environment = ["GH_SECRET": WebhookAPITests.githubSecret, "GL_TOKEN": WebhookAPITests.gitlabToken,
                           "WH_SECRET": WebhookAPITests.genericSecret, "SLACK_SECRET": WebhookAPITests.slackSecret]
        let server = try RollgateProcess(["serve", "--config", config], environment: environment)
        let client = HTTPClient(port: try await server.port())
        let now = Int64(Date().timeIntervalSince1970)

        // A fresh push: max_age (1h by default) ignores one pushed in 2019.
        let push = Array(WebhookAPITests.fixture("push-branch").replacingOccurrences(of: "\"pushed_at\": 1557933657", with: "\"pushed_at\": \(now)").utf8)
        let githubSignature = "sha256=" + WebhookSignature.hmac(key: Array(WebhookAPITests.githubSecret.utf8), push).map { String(format: "%02x", $0) }.joined()
        let fromGitHub = try await client.request("POST", "/api/v1/hooks/github", headers: [
            ("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d-1"), ("X-Hub-Signature-256", githubSignature)], body: push)
        #expect(fromGitHub.status == 202, "\(String(decoding: fromGitHub.body, as: UTF8.self))")
        // Claimed before the others come: a queued run would be superseded by them.
        #expect(try await eventually { json(try await client.request("GET", "/api/v1/runs/1"))["status"] == .string("running") })

        let gitlabPush = Array(#"{"object_kind":"push","ref":"refs/heads/main","checkout_sha":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","user_username":"jsmith","project":{"path_with_namespace":"group/web"}}"#.utf8)
        let fromGitLab = try await client.request("POST", "/api/v1/hooks/gitlab", headers: [("X-Gitlab-Token", WebhookAPITests.gitlabToken)], body: gitlabPush)
        #expect(fromGitLab.status == 202)

        let generic = Array(#"{"service":"web","version":"build-9","requested_by":"buildkite"}"#.utf8)
        let genericSignature = WebhookSignature.standardHeader(body: generic, id: "msg_e2e", timestamp: now, secret: WebhookAPITests.genericSecret)!
        let fromCI = try await client.request("POST", "/api/v1/hooks/generic", headers: [
            ("webhook-id", "msg_e2e"), ("webhook-timestamp", "\(now)"), ("webhook-signature", genericSignature)], body: generic)
        #expect(fromCI.status == 202)

        let command = Array("user_id=U7&user_name=carol&command=%2Fdeploy&text=web+v99+from+chat".utf8)
        let slackSignature = "v0=" + WebhookSignature.hmac(key: Array(WebhookAPITests.slackSecret.utf8), Array("v0:\(now):".utf8) + command)
            .map { String(format: "%02x", $0) }.joined()
        let fromSlack = try await client.request("POST", "/api/v1/hooks/slack", headers: [
            ("X-Slack-Request-Timestamp", "\(now)"), ("X-Slack-Signature", slackSignature)], body: command)
        #expect(fromSlack.status == 200)
        #expect(json(fromSlack)["text"]?.string?.contains("queued run 4: deploy web v99 (from chat)") == true, "\(json(fromSlack).text)")

        // Runs 2 and 3 were superseded while 1 rolled; 1 and 4 roll.
        FileManager.default.createFile(atPath: directory.path + "/go", contents: Data())
        for id in [Int64(1), 4] {
            #expect(try await finished(client, run: id)["status"] == .string("succeeded"))
        }
        let history = try await FleetHistory.read(client)
        #expect(history.runs.compactMap { $0["requested_by"]?.string } == [
            "github:Codertocat (push Codertocat/Hello-World@6113728)", "gitlab:jsmith (push group/web@da15608)",
            "webhook:buildkite (msg_e2e)", "slack:U7 (carol)"])
        server.kill(SIGTERM)
    }
}
