@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import Monitoring
@testable import WireFormat
import Foundation
import Synchronization
import Testing
import Outbound
import MicroHTTP
import HTTPTesting
@testable import RollgateServer
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore

/// Answers notifications as a test says (failing for some URLs), recording each request.
final class ScriptedOutbound: OutboundHTTP {
    private let state = Mutex<(requests: [OutboundRequest], down: Set<String>)>(([], []))

    var requests: [OutboundRequest] { state.withLock { $0.requests } }
    func setDown(_ url: String, _ down: Bool) { state.withLock { if down { $0.down.insert(url) } else { $0.down.remove(url) } } }
    func bodies(to url: String) -> [JSONValue] {
        requests.filter { $0.url == url }.compactMap { JSONValue.parse($0.body) }
    }

    func send(_ request: OutboundRequest) async throws -> OutboundResponse {
        let down = state.withLock { state -> Bool in
            state.requests.append(request)
            return state.down.contains(request.url)
        }
        if down { throw OutboundError(url: request.url, reason: "Couldn't connect to server") }
        return OutboundResponse(status: 200)
    }
}

@Suite struct NotifierTests {
    let directory = TempDirectory()
    let clock = ManualClock()
    let http = ScriptedOutbound()
    let store: Store
    let config: Config
    static let slack = "https://hooks.slack.test/services/T/B/x"
    static let sink = "https://ci.example.test/rollgate"
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    init() throws {
        var web = quickService("web")
        web.notify = NotifySettings(slackWebhook: Self.slack, webhookURL: Self.sink, webhookSecret: Self.secret, githubToken: "ghp_test_token")
        var config = Config(database: directory.path + "/notify.db", services: [web])
        config.notificationRetry = RetrySettings(first: .seconds(1), max: .seconds(8), attempts: 5)
        config.githubAPI = "https://github.test/api"
        config.publicURL = "https://deploy.example.com"
        self.config = config
        store = try Store(path: config.database, migrator: Migrator(directory: migrationsDirectory))
    }

    let telemetry = Telemetry()
    var notifier: Notifier { Notifier(outbox: StorePorts(store: store, work: BlockingWork(width: 2)), config: config, http: http, clock: clock, logger: .quiet, telemetry: telemetry) }

    /// A run that rolls two targets and succeeds, as the store records it.
    @discardableResult
    func roll(_ version: String, leaveOut: Bool = false) throws -> RunID {
        guard case .created(let run, _) = try store.enqueue(service: "web", version: version, reason: "ship it", requestedBy: "api:ci",
                                                            idempotencyKey: nil, at: clock.now) else { throw TestFailure("not queued") }
        let lease = try store.claimNext(owner: .test, lease: .seconds(60), at: clock.now)?.lease
        for id in ["web-1", "web-2"] {
            let target = Target(id: id, port: 8080)
            try store.markOut(run: run.id, service: "web", target: target, phase: .drain, reason: "rolling", lease: lease!, at: clock.now)
            if leaveOut && id == "web-2" {
                try store.noteLeftOut(service: "web", target: target, run: run.id, phase: .deploy, reason: "deploy hook failed", at: clock.now)
                try store.finish(run.id, .fail, error: "deploy hook failed on web-2", code: .hookFailed, lease: lease!, at: clock.now)
                return run.id
            }
            try store.markDone(run: run.id, service: "web", target: target, lease: lease!, at: clock.now)
        }
        try store.finish(run.id, .succeed, error: nil, code: nil, lease: lease!, at: clock.now)
        return run.id
    }

    @Test func everyEventReachesEveryDestinationInOrder() async throws {
        // Events from before the notifier first looked are history: not replayed.
        try roll("v0")
        await notifier.pass()
        #expect(http.requests.isEmpty)
        let id = try roll("v1")
        for _ in 0..<8 { await notifier.pass() }
        let texts = http.bodies(to: Self.slack).compactMap { $0["text"]?.string }
        #expect(texts == [
            "run \(id) (web v1) queued by api:ci: ship it https://deploy.example.com/api/v1/runs/\(id)",
            "run \(id) (web v1) started, asked by api:ci https://deploy.example.com/api/v1/runs/\(id)",
            "run \(id) (web v1): web-1 is back in service at v1 https://deploy.example.com/api/v1/runs/\(id)",
            "run \(id) (web v1): web-2 is back in service at v1 https://deploy.example.com/api/v1/runs/\(id)",
            "run \(id) (web v1) succeeded: every target runs v1 https://deploy.example.com/api/v1/runs/\(id)",
        ])
        let signed = http.requests.filter { $0.url == Self.sink }
        #expect(signed.compactMap { JSONValue.parse($0.body)?["type"]?.string } ==
                ["run.queued", "run.started", "run.target_done", "run.target_done", "run.succeeded"])
        for request in signed {
            let headers = Dictionary(uniqueKeysWithValues: request.headers.map { ($0.0.lowercased(), $0.1) })
            #expect(WebhookSignature.standard(body: request.body, id: headers["webhook-id"], timestamp: headers["webhook-timestamp"],
                                              signatures: headers["webhook-signature"], secret: Self.secret, now: clock.now) == nil,
                    "each notification is signed the Standard Webhooks way")
        }
        #expect(try store.deliveries(of: id).allSatisfy { $0.status == .delivered && $0.attempts == 1 })
        #expect(!http.requests.contains { $0.url.hasPrefix("https://github.test") }, "only runs GitHub started get deployment statuses")
    }

    @Test func aReceiverThatIsDownGetsEverythingInOrderOnceItIsBack() async throws {
        await notifier.pass()
        http.setDown(Self.sink, true)
        let id = try roll("v2")
        await notifier.pass()
        #expect(http.bodies(to: Self.slack).count == 5, "one dead receiver does not hold up the others")
        let tried = http.requests.filter { $0.url == Self.sink }
        #expect(tried.count == 1, "later events wait behind the failed one; retried after the backoff, not at once")
        let pending = try store.deliveries(of: id).filter { $0.destination == "webhook:web" }
        #expect(pending.first?.status == .pending && pending.first?.lastError?.contains("Couldn't connect") == true)
        clock.advance(by: .seconds(1))
        await notifier.pass()
        #expect(http.requests.filter { $0.url == Self.sink }.count == 2)
        http.setDown(Self.sink, false)
        clock.advance(by: .seconds(2))
        for _ in 0..<6 { await notifier.pass() }
        let types = http.requests.filter { $0.url == Self.sink }.compactMap { JSONValue.parse($0.body)?["type"]?.string }
        #expect(types == ["run.queued", "run.queued", "run.queued", "run.started", "run.target_done", "run.target_done", "run.succeeded"])
        let ids = http.requests.filter { $0.url == Self.sink }.map { request in request.headers.first { $0.0 == "webhook-id" }?.1 ?? "" }
        #expect(Set(ids.prefix(3)).count == 1, "a retry carries the same webhook-id, for the receiver to deduplicate")
        #expect(try store.deliveries(of: id).filter { $0.destination == "webhook:web" }.allSatisfy { $0.status == .delivered })
    }

    @Test func aReceiverDeadForGoodIsGivenUpAndLaterEventsGoOn() async throws {
        await notifier.pass()
        http.setDown(Self.sink, true)
        let id = try roll("v3")
        for _ in 0..<30 {
            await notifier.pass()
            clock.advance(by: .seconds(8))
        }
        let deliveries = try store.deliveries(of: id).filter { $0.destination == "webhook:web" }
        #expect(deliveries.allSatisfy { $0.status == .failed && $0.attempts == 5 }, "\(deliveries.map { "\($0.status) \($0.attempts)" })")
        #expect(try store.pendingDeliveryCounts()["webhook:web"] == nil, "nothing is left waiting")
        let metrics = String(decoding: telemetry.exposition(), as: UTF8.self)
        #expect(metrics.contains(#"rollgate_notification_attempts_total{destination="webhook:web",result="failed"} 5"#), "\(metrics)")
        #expect(metrics.contains(#"rollgate_notification_attempts_total{destination="webhook:web",result="retrying"} 20"#), "\(metrics)")
    }

    @Test func aSlackReplyURLTakesFiveMessagesKeepingTheLastForTheEndThenTheWebhookTakesOver() async throws {
        await notifier.pass()
        guard case .created(let run, _) = try store.enqueue(service: "web", version: "v4", reason: nil, requestedBy: "slack:U1 (alice)",
                                                            idempotencyKey: nil, at: clock.now) else { throw TestFailure("not queued") }
        let reply = "https://hooks.slack.test/commands/T/1/reply"
        try store.setReplyTargets(of: run.id, replyURL: reply, githubDeployment: nil)
        let lease = try store.claimNext(owner: .test, lease: .seconds(600), at: clock.now)?.lease
        for index in 1...5 {
            let target = Target(id: "web-\(index)", port: 8080)
            _ = try store.freezePlan(run: run.id, targets: [target])
            try store.markDone(run: run.id, service: "web", target: target, lease: lease!, at: clock.now)
        }
        try store.finish(run.id, .succeed, error: nil, code: nil, lease: lease!, at: clock.now)
        for _ in 0..<12 { await notifier.pass() }
        let replies = http.bodies(to: reply).compactMap { $0["text"]?.string }
        #expect(replies.count == 5)
        #expect(replies.first?.contains("started") == true && replies.last?.contains("succeeded") == true, "\(replies)")
        let webhook = http.bodies(to: Self.slack).compactMap { $0["text"]?.string }
        #expect(webhook.contains { $0.contains("queued") }, "the queued event is the command's own answer; the webhook says it")
        #expect(webhook.filter { $0.contains("is back in service") }.count == 2, "what the reply could not take goes to the webhook: \(webhook)")
        #expect(!webhook.contains { $0.contains("succeeded") })
    }

    @Test func runsGitHubStartedGetDeploymentStatuses() async throws {
        await notifier.pass()
        guard case .created(let run, _) = try store.enqueue(service: "web", version: "f95f852", reason: nil, requestedBy: "github:Codertocat",
                                                            idempotencyKey: nil, at: clock.now) else { throw TestFailure("not queued") }
        try store.setReplyTargets(of: run.id, replyURL: nil, githubDeployment: "Codertocat/Hello-World/145988746")
        let lease = try store.claimNext(owner: .test, lease: .seconds(60), at: clock.now)?.lease
        try store.finish(run.id, .fail, error: "deploy hook failed on web-1", code: .hookFailed, lease: lease!, at: clock.now)
        for _ in 0..<4 { await notifier.pass() }
        let statuses = http.requests.filter { $0.url == "https://github.test/api/repos/Codertocat/Hello-World/deployments/145988746/statuses" }
        #expect(statuses.compactMap { JSONValue.parse($0.body)?["state"]?.string } == ["queued", "in_progress", "failure"])
        #expect(statuses.first?.headers.contains { $0.0 == "Authorization" && $0.1 == "Bearer ghp_test_token" } == true)
        #expect(JSONValue.parse(statuses.last?.body ?? [])?["log_url"] == .string("https://deploy.example.com/api/v1/runs/\(run.id)"))
    }

    @Test func aLeftOutTargetIsToldAbout() async throws {
        await notifier.pass()
        let id = try roll("v5", leaveOut: true)
        for _ in 0..<8 { await notifier.pass() }
        let texts = http.bodies(to: Self.slack).compactMap { $0["text"]?.string }
        #expect(texts.contains("run \(id) (web v5): web-2 is left out of the load balancer: deploy hook failed https://deploy.example.com/api/v1/runs/\(id)"))
        #expect(texts.last?.hasPrefix("run \(id) (web v5) failed: deploy hook failed on web-2") == true)
    }
}

/// A webhook sink on loopback (Support/webhook_sink.py) that writes what it receives.
final class WebhookSink: @unchecked Sendable {
    // @unchecked: `process` is replaced only by start()/stop(), which the test calls in turn.
    var process = Process()
    let port: UInt16
    let host: String
    let out: String

    init(directory: TempDirectory, host: String = "127.0.0.1", name: String = "sink") async throws {
        port = try await freePort()
        self.host = host
        out = directory.path + "/\(name).jsonl"
        try await start()
    }

    func start() async throws {
        process = Process()
        try await startPython(process, [repositoryRoot + "/Tests/RollgateTests/Support/webhook_sink.py", "--port", "\(port)", "--host", host, "--out", out],
                              answeringOn: port, host: host, else: "the webhook sink did not start on \(host):\(port)")
    }

    /// Every request received, as its JSON record.
    var records: [JSONValue] {
        ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { JSONValue.parse(Array($0.utf8)) }
    }

    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The received notifications' (webhook-id, type), in arrival order.
    var received: [(id: String, type: String)] {
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let record = JSONValue.parse(Array(line.utf8)), let id = record["headers"]?["webhook-id"]?.string,
                  let body = record["body"]?.string, let type = JSONValue.parse(Array(body.utf8))?["type"]?.string else { return nil }
            return (id, type)
        }
    }
}

@Suite(.serialized) struct NotificationBinaryTests {
    let directory = TempDirectory()

    /// Every notification reaches the sink in order, also those sent while it was down and
    /// across a rollgate restart.
    @Test func theSinkGetsEveryEventInOrderThroughAnOutageAndARestart() async throws {
        let sink = try await WebhookSink(directory: directory)
        defer { sink.stop() }
        let config = directory.write("notify.yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(directory.path)/notify.db
            notifications: {retry_first: 200ms, retry_max: 1s}
            api_tokens: [{name: ci, token: "notify-test-token-0123456789"}]
            services:
              - name: web
                simulated: {targets: 2, drain_seconds: 0.3, healthy_seconds: 0.3}
                poll_interval: 100ms
                notify:
                  webhook: {url: "http://127.0.0.1:\(sink.port)/rollgate", secret_env: NOTIFY_SECRET}
                hooks: {deploy: sleep 0.5}
            """)
        let environment = ["NOTIFY_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
        let auth = [("Authorization", "Bearer notify-test-token-0123456789")]
        var server = try RollgateProcess(["serve", "--config", config], environment: environment)
        var client = HTTPClient(port: try await server.port())
        let first = json(try await client.request("POST", "/api/v1/deploys", headers: auth, body: Array(#"{"service":"web","version":"v1"}"#.utf8)))["id"]?.int ?? 0
        #expect(try await finished(client, run: first)["status"] == .string("succeeded"))
        #expect(try await eventually(within: .seconds(10)) { sink.received.count == 5 })

        // The receiver goes down; a second run rolls meanwhile; rollgate restarts; it comes back.
        sink.stop()
        let second = json(try await client.request("POST", "/api/v1/deploys", headers: auth, body: Array(#"{"service":"web","version":"v2"}"#.utf8)))["id"]?.int ?? 0
        #expect(try await finished(client, run: second)["status"] == .string("succeeded"))
        let waiting = json(try await client.request("GET", "/api/v1/runs/\(second)/deliveries"))["deliveries"]?.array ?? []
        #expect(waiting.contains { $0["status"] == .string("pending") && $0["last_error"]?.string?.isEmpty == false }, "\(waiting)")
        server.kill(SIGTERM)
        server = try RollgateProcess(["serve", "--config", config], environment: environment)
        client = HTTPClient(port: try await server.port())
        try await sink.start()
        #expect(try await eventually(within: .seconds(20)) { sink.received.count >= 10 })
        let received = sink.received
        var seen: Set<String> = []
        let unique = received.filter { seen.insert($0.id).inserted }
        #expect(unique.map(\.type) == ["run.queued", "run.started", "run.target_done", "run.target_done", "run.succeeded",
                                       "run.queued", "run.started", "run.target_done", "run.target_done", "run.succeeded"])
        let seqs = unique.compactMap { Int($0.id.dropFirst(4)) }
        #expect(seqs == seqs.sorted(), "in the order they happened")
        #expect(try await eventually(within: .seconds(5)) {
            let delivered = json(try await client.request("GET", "/api/v1/runs/\(second)/deliveries"))["deliveries"]?.array ?? []
            return delivered.count == 5 && delivered.allSatisfy { $0["status"] == .string("delivered") && $0["attempts"]?.int ?? 0 >= 1 }
        }, "the outcome of each delivery is recorded")
        let metrics = String(decoding: try await client.request("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains(#"rollgate_notification_attempts_total{destination="webhook:web",result="delivered"} 5"#),
                "this process delivered what waited for it: \(metrics)")
        #expect(metrics.contains(#"rollgate_notifications_pending{destination="webhook:web"} 0"#), "\(metrics)")
        server.kill(SIGTERM)
    }
}

/// The server's one outbound client carries every request it sends: notifications (above),
/// the AWS calls of a roll and the instance metadata asked for credentials.
@Suite struct OneOutboundClientTests {
    let directory = TempDirectory()

    func app(_ environment: [String: String], http: ScriptedOutbound) throws -> App {
        var web = quickService("web")
        web.source = .awsTargetGroups(arns: ["arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/abc"])
        let config = Config(database: directory.path + "/outbound-\(UUID().uuidString).db", services: [web])
        let isolated = ["HOME": directory.path, "AWS_SHARED_CREDENTIALS_FILE": directory.path + "/none",
                        "AWS_CONFIG_FILE": directory.path + "/none", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"]
        return try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                       environment: isolated.merging(environment) { _, new in new }, logger: .quiet, outbound: http)
    }

    @Test func awsCallsAndInstanceMetadataGoThroughTheAppsClient() async throws {
        let http = ScriptedOutbound()
        let withKeys = try app(["AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret"], http: http)
        _ = try? await withKeys.services.timing(for: "web")
        #expect(http.requests.contains { $0.method == "POST" && $0.url.hasPrefix("http://127.0.0.1:9") },
                "DescribeTargetGroups went through the client given: \(http.requests.map(\.url))")
        let metadata = ScriptedOutbound()
        let fromMetadata = try app(["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:7"], http: metadata)
        _ = try? await fromMetadata.services.timing(for: "web")
        #expect(metadata.requests.contains { $0.method == "PUT" && $0.url == "http://127.0.0.1:7/latest/api/token" },
                "the instance metadata was asked through it: \(metadata.requests.map(\.url))")
    }
}
