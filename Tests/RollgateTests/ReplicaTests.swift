@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
import HTTPTesting
import PostgresStore
import PostgresTesting
@testable import RollgateServer
import Rollout

/// Several `rollgate serve` on one PostgreSQL, with the release-like binary: every replica
/// serves every read, a deploy posted to one is rolled once by some replica, and the loss of
/// the replica holding a run mid-roll (kill -9) leaves the run to another, finished from
/// where it was, capacity kept.
@Suite(.serialized) struct ReplicaTests {
    let directory = TempDirectory()
    let token = "replica-test-token-0123456789"
    static let server: Result<PostgresServer, Error> = Result { try PostgresServer() }

    /// `aws`: the services roll one target group over the wire instead (`aws.endpoint_url`, `arn`).
    func config(_ name: String, database: String, deploy: String, drain: Double = 0.3, healthy: Double = 0.3, services: Int = 1,
                aws: (endpoint: String, arn: String)? = nil) -> String {
        directory.write("\(name).yaml", """
            listen: 127.0.0.1:0
            name: \(name)
            public_read: true
            database: \(database)
            lease: 3s
            rate_limit: {writes_per_second: 1000, burst: 1000}   # deploys posted at once are the point
            api_tokens: [{name: ci, token_env: TEST_ROLLGATE_TOKEN}]
            \(aws.map { "aws: {region: us-east-1, endpoint_url: \($0.endpoint), describe_per_second: 10, changes_per_second: 10}" } ?? "")
            services:
            \(aws.map { aws in """
              - name: web
                target_group_arn: \(aws.arn)
                poll_interval: 100ms
                drain_timeout: 30s
                healthy_timeout: 30s
                hooks: {deploy: '\(deploy)'}
            """ } ?? (0..<services).map { n in """
              - name: \(n == 0 ? "web" : "svc\(n)")
                simulated: {targets: 3, drain_seconds: \(drain), healthy_seconds: \(healthy)}
                poll_interval: 100ms
                hooks: {deploy: '\(deploy)'}
            """ }.joined(separator: "\n"))
            """)
    }

    func start(_ names: [String], database: String, deploy: String, drain: Double = 0.3, healthy: Double = 0.3,
               services: Int = 1, aws: (endpoint: String, arn: String)? = nil) async throws -> [(name: String, process: RollgateProcess, client: HTTPClient)] {
        var replicas: [(String, RollgateProcess, HTTPClient)] = []
        for name in names {
            let process = try RollgateProcess(["serve", "--config", config(name, database: database, deploy: deploy, drain: drain, healthy: healthy,
                                                                            services: services, aws: aws)],
                                              environment: ["TEST_ROLLGATE_TOKEN": token, "AWS_ACCESS_KEY_ID": "testing",
                                                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"])
            replicas.append((name, process, HTTPClient(port: try await process.port(), timeoutSeconds: 30)))
        }
        return replicas
    }

    /// `rollgate_runs_held{replica,service="web"}` as the replica's /metrics says it.
    func heldGauge(_ replica: (name: String, process: RollgateProcess, client: HTTPClient)) async throws -> Double? {
        let text = String(decoding: try await replica.client.request("GET", "/metrics").body, as: UTF8.self)
        let prefix = #"rollgate_runs_held{replica="\#(replica.name)",service="web"} "#
        return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count)) }
    }

    func deploy(_ client: HTTPClient, _ version: String, service: String = "web") async throws -> Int64 {
        let answer = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                              body: Array(#"{"service":"\#(service)","version":"\#(version)"}"#.utf8))
        #expect(answer.status == 202, "\(String(decoding: answer.body, as: UTF8.self))")
        return try #require(json(answer)["id"]?.int)
    }

    @Test func aDeployPostedToOneReplicaIsRolledOnceAndReadOnEvery() async throws {
        let uri = try Self.server.get().createDatabase()
        let replicas = try await start(["replica-a", "replica-b"], database: uri, deploy: "echo deploying $ROLLGATE_VERSION")
        defer { for replica in replicas { replica.process.kill(SIGTERM) } }
        let health = json(try await replicas[1].client.request("GET", "/healthz"))
        #expect(health["replica"] == .string("replica-b"))
        let id = try await deploy(replicas[0].client, "v2")
        let done = try await finished(replicas[1].client, run: id)
        #expect(done["status"] == .string("succeeded"), "\(done.text)")
        #expect(["replica-a", "replica-b"].contains(done["rolled_by"]?.string ?? ""))
        for replica in replicas {
            let run = json(try await replica.client.request("GET", "/api/v1/runs/\(id)"))
            #expect(run["status"] == .string("succeeded") && run["steps"]?.array?.count == 9, "\(replica.name)")
            let lines = json(try await replica.client.request("GET", "/api/v1/runs/\(id)/logs"))["lines"]?.array ?? []
            #expect(lines.contains { $0["text"] == .string("deploying v2") }, "\(replica.name) reads the log")
        }
        let runs = json(try await replicas[0].client.request("GET", "/api/v1/runs"))["runs"]?.array ?? []
        #expect(runs.count == 1, "rolled once")
        // One account's AWS limit: the two idle replicas spend half of the budget each; once one
        // stops, the other has all of it again.
        func sharedAmong(_ replica: (name: String, process: RollgateProcess, client: HTTPClient)) async throws -> Double? {
            let text = String(decoding: try await replica.client.request("GET", "/metrics").body, as: UTF8.self)
            let prefix = #"rollgate_aws_budget_share{replica="\#(replica.name)"} "#
            return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count)) }
        }
        for replica in replicas {
            #expect(try await eventually(within: .seconds(10)) { try await sharedAmong(replica) == 0.5 }, "\(replica.name)")
        }
        replicas[1].process.kill(SIGTERM)
        #expect(try await eventually(within: .seconds(10)) { try await sharedAmong(replicas[0]) == 1 }, "a stopped replica gives its share back")
    }

    /// kill -9 of the replica rolling a run, in its drain, its deploy hook and its health wait,
    /// over the ELBv2 wire (moto behind the timing proxy, which keeps a deregistered target
    /// draining and a registered one initial for real): the other replica takes the run over
    /// once its lease lapses and finishes it, one run in the history, and the load balancer
    /// as the fixture recorded it never had two targets out at once.
    @Test(arguments: ["drain", "deploy", "restore"])
    func theLossOfTheReplicaHoldingARunLeavesItToAnother(phase: String) async throws {
        let uri = try Self.server.get().createDatabase()
        let moto = try await MotoServer()
        defer { moto.stop() }
        let (arn, instances) = try await moto.createTargetGroup(instances: 3)
        let proxy = try await TimingProxy(moto: moto, drain: 1.5, healthy: 1.5, directory: directory)
        defer { proxy.stop() }
        let hook = "sleep 1.5; echo deployed $ROLLGATE_TARGET_ID"
        let replicas = try await start(["replica-a", "replica-b"], database: uri, deploy: hook, aws: (proxy.endpoint, arn))
        defer { for replica in replicas { replica.process.kill(SIGTERM) } }
        let id = try await deploy(replicas[0].client, "v3")
        // Wait until a replica is in that phase of the first target.
        var holder: String?
        #expect(try await eventually(within: .seconds(30)) {
            let run = json(try await replicas[0].client.request("GET", "/api/v1/runs/\(id)"))
            let inPhase = run["steps"]?.array?.contains { $0["phase"] == .string(phase) && $0["status"] == .string("running") } ?? false
            holder = run["rolled_by"]?.string
            return inPhase && holder != nil
        })
        let lost = try #require(replicas.first { $0.name == holder })
        let survivor = try #require(replicas.first { $0.name != holder })
        // /healthz says which replica holds the run.
        let heldBy = json(try await lost.client.request("GET", "/healthz"))["runs"]?.array ?? []
        #expect(heldBy.map { $0["id"]?.int } == [id] && heldBy.first?["service"] == .string("web"), "\(heldBy)")
        #expect(json(try await survivor.client.request("GET", "/healthz"))["runs"]?.array == [], "held by one replica only")
        let gauges = (try await heldGauge(lost), try await heldGauge(survivor))
        #expect(gauges.0 == 1 && gauges.1 == 0, "/metrics says the same: \(gauges)")
        lost.process.kill(SIGKILL)
        let done = try await finished(survivor.client, run: id)
        #expect(done["status"] == .string("succeeded"), "\(done.text)")
        #expect(done["rolled_by"] == .string(survivor.name), "taken over by the survivor")
        #expect((done["interruptions"]?.int ?? 0) >= 1 || (done["steps"]?.array?.count ?? 0) >= 9)
        #expect(json(try await survivor.client.request("GET", "/healthz"))["runs"]?.array == [], "nothing held once it ended")
        let steps = done["steps"]?.array ?? []
        for target in instances {
            #expect(steps.contains { $0["target_id"] == .string(target) && $0["phase"] == .string("restore") && $0["status"] == .string("succeeded") },
                    "\(target) back in service")
        }
        // As the modelled load balancer saw it: never two instances out at once, all back.
        let out = proxy.outOfService()
        #expect(out.most <= 1, "out at once: \(proxy.recorded())")
        #expect(out.stillOut.isEmpty, "every instance is back: \(out.stillOut)")
        let runs = json(try await survivor.client.request("GET", "/api/v1/runs"))["runs"]?.array ?? []
        #expect(runs.count == 1, "one run in the history")
    }

    /// A replica cut off from the database mid-roll (its connections through a TCP proxy,
    /// which is killed) stops acting at its local deadline and kills its hook, before another
    /// replica, which still reaches the database, takes the run over once its lease ends:
    /// two replicas never act on one run. The other finishes it; nothing is out twice.
    @Test func aReplicaCutOffFromTheDatabaseStopsActingBeforeAnotherTakesOver() async throws {
        let postgres = try Self.server.get()
        let uri = try postgres.createDatabase()
        let proxyPort = try await freePort()
        let proxy = Process()
        proxy.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proxy.arguments = ["python3", repositoryRoot + "/Tests/RollgateTests/Support/tcp_proxy.py", "--port", "\(proxyPort)",
                           "--to", "127.0.0.1:\(postgres.port)"]
        try proxy.run()
        defer { kill(proxy.processIdentifier, SIGKILL); proxy.waitUntilExit() }
        let throughProxy = uri.replacingOccurrences(of: "127.0.0.1:\(postgres.port)/", with: "127.0.0.1:\(proxyPort)/")
        #expect(try await eventually(within: .seconds(15)) { (try? PGConnection(uri: throughProxy)) != nil }, "the proxy forwards")
        let acts = directory.path + "/acts.txt"
        // The trap's time is taken when TERM comes (`\$` in the shell: not when the trap is set).
        let hookA = "trap \"echo killed-a \\$(date +%s.%N) >> \(acts); exit 143\" TERM; echo start-a $ROLLGATE_TARGET_ID $(date +%s.%N) >> \(acts); sleep 30 & wait"
        let a = try await start(["replica-a"], database: throughProxy, deploy: hookA)[0]
        defer { a.process.kill(SIGKILL) }
        let id = try await deploy(a.client, "v6")
        #expect(try await eventually(within: .seconds(20)) {
            ((try? String(contentsOfFile: acts, encoding: .utf8)) ?? "").contains("start-a")
        }, "replica-a runs the deploy hook")
        let b = try await start(["replica-b"], database: uri, deploy: "echo start-b $ROLLGATE_TARGET_ID $(date +%s.%N) >> \(acts)")[0]
        defer { b.process.kill(SIGTERM) }
        // Cut replica-a off: its connections and any new one fail from now on.
        kill(proxy.processIdentifier, SIGKILL)
        proxy.waitUntilExit()
        let done = try await finished(b.client, run: id)
        #expect(done["status"] == .string("succeeded"), "\(done.text)")
        #expect(done["rolled_by"] == .string("replica-b"))
        let lines = ((try? String(contentsOfFile: acts, encoding: .utf8)) ?? "").split(separator: "\n").map { $0.split(separator: " ") }
        let killedA = lines.first { $0.first == "killed-a" }.flatMap { Double($0[1]) }
        let firstB = lines.first { $0.first == "start-b" }.flatMap { Double($0[2]) }
        let killed = try #require(killedA, "replica-a killed its hook at its local deadline: \(lines)")
        let startedB = try #require(firstB, "replica-b ran the hook: \(lines)")
        #expect(killed < startedB, "replica-a had stopped acting before replica-b acted: killed \(killed), b started \(startedB)")
        let outages = (done["out_of_service"]?.array ?? []).compactMap { ($0["from"]?.string, $0["until"]?.string) as? (String, String) }
        for (x, y) in zip(outages, outages.dropFirst()) { #expect(x.1 <= y.0, "never two out at once: \(outages)") }
    }

    /// The database restarts in the middle of a roll (every connection cut, refused for a
    /// moment): the roll's writes wait and are retried, and the run completes with every
    /// target back; the database is never the reason a target is left out.
    @Test func aDatabaseRestartMidRollPausesTheRollAndItCompletes() async throws {
        let server = try PostgresServer()
        defer { server.remove() }
        let uri = try server.createDatabase()
        let replicas = try await start(["replica-a"], database: uri, deploy: "sleep 1; echo deployed $ROLLGATE_TARGET_ID")
        defer { for replica in replicas { replica.process.kill(SIGTERM) } }
        let client = replicas[0].client
        let id = try await deploy(client, "v4")
        #expect(try await eventually(within: .seconds(20)) {
            let run = json(try await client.request("GET", "/api/v1/runs/\(id)"))
            return run["steps"]?.array?.contains { $0["phase"] == .string("deploy") && $0["status"] == .string("running") } ?? false
        })
        server.stop()
        try await Task.sleep(for: .seconds(2))
        try server.start()
        let done = try await finished(client, run: id)
        #expect(done["status"] == .string("succeeded"), "\(done.text)")
        let steps = done["steps"]?.array ?? []
        for target in ["web-1", "web-2", "web-3"] {
            #expect(steps.contains { $0["target_id"] == .string(target) && $0["phase"] == .string("restore") && $0["status"] == .string("succeeded") },
                    "\(target) back in service")
        }
        let health = json(try await client.request("GET", "/healthz"))
        #expect(health["status"] == .string("ok"), "writes succeed again: \(health.text)")
    }

    /// A run's log and the event stream followed on every replica while one of them rolls
    /// the run: each stream gets every line and the end, whichever replica it is open on
    /// (the others learn of the lines by LISTEN/NOTIFY).
    @Test func streamsOnEveryReplicaFollowARunRolledByAnother() async throws {
        let uri = try Self.server.get().createDatabase()
        let hook = "for i in 1 2 3 4; do echo line $i on $ROLLGATE_TARGET_ID; sleep 0.1; done"
        let replicas = try await start(["replica-a", "replica-b"], database: uri, deploy: hook)
        defer { for replica in replicas { replica.process.kill(SIGTERM) } }
        async let eventsA = readEvents(port: replicas[0].client.port, path: "/api/v1/events") { $0.contains("event: run.succeeded") }
        async let eventsB = readEvents(port: replicas[1].client.port, path: "/api/v1/events") { $0.contains("event: run.succeeded") }
        try await Task.sleep(for: .milliseconds(300))
        let id = try await deploy(replicas[0].client, "v5")
        async let logA = readEvents(port: replicas[0].client.port, path: "/api/v1/runs/\(id)/logs") { $0.contains("event: end") }
        async let logB = readEvents(port: replicas[1].client.port, path: "/api/v1/runs/\(id)/logs") { $0.contains("event: end") }
        let (a, b, ea, eb) = try await (logA, logB, eventsA, eventsB)
        for (name, text) in [("replica-a", a), ("replica-b", b)] {
            for target in ["web-1", "web-2", "web-3"] {
                #expect((1...4).allSatisfy { text.contains("line \($0) on \(target)") }, "\(name): every line of \(target)")
            }
            #expect(text.contains("\"status\":\"succeeded\""), "\(name): the end")
        }
        for (name, text) in [("replica-a", ea), ("replica-b", eb)] {
            #expect(text.contains("event: run.started") && text.contains("event: run.succeeded"), "\(name) streams the run's events")
        }
        let done = json(try await replicas[1].client.request("GET", "/api/v1/runs/\(id)"))
        #expect(["replica-a", "replica-b"].contains(done["rolled_by"]?.string ?? ""))
    }

    /// A primary with a synchronous streaming standby; mid-roll the primary dies (kill -9)
    /// and the standby is promoted. A replica whose URI names both hosts with
    /// `target_session_attrs=read-write` finds the new primary and finishes the run; nothing
    /// it was told was committed is lost.
    @Test func aFailoverToAPromotedStandbyMidRollLosesNothing() async throws {
        let primary = try PostgresServer(settings: ["synchronous_commit=on"])
        defer { primary.remove() }
        let created = try primary.createDatabase()
        let name = String(created.split(separator: "/").last!.split(separator: "?").first!)
        let standby = try PostgresServer(standbyOf: primary)
        defer { standby.remove() }
        let admin = try PGConnection(uri: primary.uri())
        try admin.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        try admin.execute("SELECT pg_reload_conf()")
        #expect(try await eventually(within: .seconds(20)) {
            try admin.execute("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'").rows.first?.int(0) == 1
        }, "the standby streams synchronously")
        let uri = "postgresql://rollgate@127.0.0.1:\(primary.port),127.0.0.1:\(standby.port)/\(name)?target_session_attrs=read-write&connect_timeout=2"
        let replicas = try await start(["replica-a"], database: uri, deploy: "sleep 1; echo deployed $ROLLGATE_TARGET_ID")
        defer { for replica in replicas { replica.process.kill(SIGTERM) } }
        let client = replicas[0].client
        let id = try await deploy(client, "v6")
        #expect(try await eventually(within: .seconds(20)) {
            let run = json(try await client.request("GET", "/api/v1/runs/\(id)"))
            return run["steps"]?.array?.contains { $0["target_id"] == .string("web-2") && $0["phase"] == .string("deploy") } ?? false
        })
        let before = json(try await client.request("GET", "/api/v1/runs/\(id)"))["steps"]?.array?.count ?? 0
        primary.kill9()
        try standby.promote()
        let done = try await finished(client, run: id)
        #expect(done["status"] == .string("succeeded"), "\(done.text)")
        let steps = done["steps"]?.array ?? []
        #expect(steps.count >= before, "no step that was committed before the failover is lost")
        for target in ["web-1", "web-2", "web-3"] {
            #expect(steps.contains { $0["target_id"] == .string(target) && $0["phase"] == .string("restore") && $0["status"] == .string("succeeded") },
                    "\(target) back in service")
        }
        let runs = json(try await client.request("GET", "/api/v1/runs"))["runs"]?.array ?? []
        #expect(runs.count == 1)
    }

    /// Deploys of several services posted at once, spread over three replicas: every run ends
    /// once (rolled, or superseded by a newer deploy of its service), and two runs of one
    /// service never roll at the same time.
    /// `ROLLGATE_REPLICA_DEPLOYS` (default 100, at most 200: one page of runs) deploys of 10 services.
    @Test func deploysPostedAtOnceAcrossThreeReplicasEachEndOnceOneRunPerServiceAtATime() async throws {
        let uri = try Self.server.get().createDatabase()
        let count = min(200, Int(ProcessInfo.processInfo.environment["ROLLGATE_REPLICA_DEPLOYS"] ?? "") ?? 100)
        let replicas = try await start(["replica-a", "replica-b", "replica-c"], database: uri, deploy: "sleep 0.1", drain: 0.1, healthy: 0.1, services: 10)
        defer { for replica in replicas { replica.process.kill(SIGTERM) } }
        let services = ["web"] + (1..<10).map { "svc\($0)" }
        try await withThrowingTaskGroup(of: Int64.self) { group in
            for n in 0..<count {
                let replica = replicas[n % replicas.count]
                group.addTask { try await deploy(replica.client, "v\(n)", service: services[n % services.count]) }
            }
            for try await _ in group {}
        }
        var runs: [JSONValue] = []
        #expect(try await eventually(within: .seconds(120)) {
            runs = json(try await replicas[2].client.request("GET", "/api/v1/runs?limit=\(count)"))["runs"]?.array ?? []
            return runs.count == count && runs.allSatisfy { !["queued", "running"].contains($0["status"]?.string ?? "") }
        }, "\(runs.map { $0["status"]?.string ?? "?" })")
        #expect(runs.allSatisfy { ["succeeded", "superseded"].contains($0["status"]?.string ?? "") })
        #expect(Set(runs.compactMap { $0["id"]?.int }).count == count, "every run once")
        for service in services {
            let spans = runs.filter { $0["service"] == .string(service) && $0["status"] == .string("succeeded") }
                .compactMap { run -> (String, String)? in
                    guard let from = run["started_at"]?.string, let until = run["finished_at"]?.string else { return nil }
                    return (from, until)
                }.sorted { $0.0 < $1.0 }
            #expect(!spans.isEmpty, "\(service) rolled")
            for (a, b) in zip(spans, spans.dropFirst()) { #expect(a.1 <= b.0, "\(service): two runs at once") }
        }
        #expect(runs.allSatisfy { $0["status"] != .string("superseded") || $0["started_at"] == .null }, "a started run is never superseded")
    }
}
