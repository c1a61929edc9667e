@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import Monitoring
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
import HTTPTesting
import RollgateServer

/// A moto_server (the AWS emulator) on a free loopback port, stopped by its PID.
final class MotoServer: @unchecked Sendable {
    // @unchecked: set up once in init, then only read.
    let process = Process()
    let port: UInt16
    let directory = TempDirectory()
    var endpoint: String { "http://127.0.0.1:\(port)" }

    init() async throws {
        port = try await freePort()
        try await startPython(process, ["-m", "moto.server", "-H", "127.0.0.1", "-p", "\(port)"], answeringOn: port,
                              else: "moto_server did not start on port \(port): is moto installed? (make test installs it: pip install 'moto[server]')")
    }

    /// Creates the load balancer, target group and instances; returns (group ARN, instance ids).
    func createTargetGroup(instances: Int = 3) async throws -> (String, [String]) {
        let (arns, ids) = try await createTargetGroups(instances: instances, groups: 1)
        return (arns[0], ids)
    }

    /// `groups` load balancers and target groups holding the same instances.
    func createTargetGroups(instances: Int, groups: Int) async throws -> ([String], [String]) {
        let output = directory.path + "/fixture.json"
        let script = Process()
        script.executableURL = URL(fileURLWithPath: "/bin/sh")
        script.arguments = ["-c", "python3 \"$0\" \"$1\" \"$2\" web \"$4\" > \"$3\"",
                            repositoryRoot + "/Tests/RollgateTests/Support/moto_fixture.py", endpoint, "\(instances)", output, "\(groups)"]
        try script.run()
        _ = try await eventually(within: .seconds(60)) { !script.isRunning }
        script.waitUntilExit()
        let data = FileManager.default.contents(atPath: output) ?? Data()
        guard script.terminationStatus == 0, let created = JSONValue.parse([UInt8](data)),
              let arns = created["target_group_arns"]?.array?.compactMap(\.string), !arns.isEmpty else {
            throw TestFailure("moto_fixture.py failed: \(String(decoding: data, as: UTF8.self))")
        }
        return (arns, created["instances"]?.array?.compactMap(\.string) ?? [])
    }

    /// A Python script with `elbv2`, a boto3 client of this moto, and `sys` at hand.
    func boto(_ body: String) -> String {
        """
        import boto3, sys
        elbv2 = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1").client("elbv2", endpoint_url="\(endpoint)")
        \(body)
        """
    }

    /// Runs `boto(body)` with `arguments` and returns what it printed.
    func boto(_ body: String, _ arguments: [String]) async throws -> String {
        let (status, output) = try await runToEnd("/usr/bin/env", ["python3", "-c", boto(body)] + arguments)
        guard status == 0 else { throw TestFailure("boto3 against moto failed: \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The group's health check as moto keeps it: "interval timeout threshold" in seconds.
    func healthCheck(of arn: String) async throws -> String {
        try await boto("""
            g = elbv2.describe_target_groups(TargetGroupArns=[sys.argv[1]])["TargetGroups"][0]
            print(g["HealthCheckIntervalSeconds"], g["HealthCheckTimeoutSeconds"], g["HealthyThresholdCount"])
            """, [arn])
    }

    /// moto's development server does not stop on SIGTERM while serving: KILL it.
    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// Runs `python3 ARGUMENTS` quietly and waits until it answers HTTP on `port` (moto's
/// /moto-api/, which the timing proxy forwards); kills it and throws `failure` if it never does.
func startPython(_ process: Process, _ arguments: [String], answeringOn port: UInt16, host: String = "127.0.0.1",
                 else failure: String) async throws {
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    let client = HTTPClient(host: host, port: port, timeoutSeconds: 2)
    guard try await eventually(within: .seconds(30), { (try? await client.request("GET", "/moto-api/")) != nil }) else {
        kill(process.processIdentifier, SIGKILL)
        throw TestFailure(failure)
    }
}

/// A port nothing listens on now: bound by a throwaway server, then released.
/// A port free now for a helper (moto, a proxy, a sink) to listen on. Drawn at random from
/// 20000-29999, below the kernel's ephemeral range: every server that binds port 0 (rollgate
/// in the tests beside this one) gets its port from that range, so none can take this one
/// between the check and the helper's start (a port 0 draw once handed moto's port to a
/// rollgate server started meanwhile).
func freePort() async throws -> UInt16 {
    for _ in 0..<200 {
        let port = UInt16.random(in: 20000...29999)
        let server = HTTPServer(configuration: HTTPServerConfiguration(port: port), handler: { _ in HTTPResponse() })
        guard (try? server.start()) != nil else { continue }
        await server.stop()
        return port
    }
    throw TestFailure("no free port in 20000-29999")
}

/// tests/Support/elb_timing_proxy.py in front of a moto: real ELB timing over the wire.
final class TimingProxy: @unchecked Sendable {
    // @unchecked: set up once in init, then only read.
    let process = Process()
    let port: UInt16
    let events: String

    init(moto: MotoServer, drain: Double, healthy: Double, throttle: Double = 0, neverHealthy: [String] = [],
         directory: TempDirectory) async throws {
        port = try await freePort()
        events = directory.path + "/events.jsonl"
        try await startPython(process, [repositoryRoot + "/Tests/RollgateTests/Support/elb_timing_proxy.py",
                                        "--moto", moto.endpoint, "--port", "\(port)", "--drain", "\(drain)", "--healthy", "\(healthy)",
                                        "--throttle", "\(throttle)", "--never-healthy", neverHealthy.joined(separator: ","),
                                        "--events", events, "--seed", "7"],
                              answeringOn: port, else: "the timing proxy did not start on port \(port)")
    }

    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// (event, target, time) as the proxy modelled them.
    func recorded() -> [(String, String, Double)] {
        let text = (try? String(contentsOfFile: events, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let value = JSONValue.parse(Array(line.utf8)), let kind = value["event"]?.string,
                  let target = value["target"]?.string, let at = value["at"]?.number else { return nil }
            return (kind, target, at)
        }
    }

    /// As the modelled load balancer saw it, from DeregisterTargets until healthy again: the
    /// most instances out at once, and the ones still out.
    func outOfService() -> (most: Int, stillOut: Set<String>) {
        var out: Set<String> = [], most = 0
        for (event, target, _) in recorded().sorted(by: { $0.2 < $1.2 }) {
            if event == "deregistered" { out.insert(target) }
            if event == "healthy" { out.remove(target) }
            most = max(most, out.count)
        }
        return (most, out)
    }

    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

@Suite(.serialized) struct MotoTests {
    let directory = TempDirectory()
    let token = "moto-test-token-0123456789"

    func config(arn: String, endpoint: String, healthyTimeout: String = "30s",
                deploy: String? = nil, maxUnavailable: Int = 1, extra: String? = nil) -> String {
        config(arns: [arn], endpoint: endpoint, healthyTimeout: healthyTimeout, deploy: deploy, maxUnavailable: maxUnavailable, extra: extra)
    }

    /// Service `web` on the groups (`target_group_arn` for one, `target_group_arns` for
    /// several); `extra`: one more key of the service.
    func config(arns: [String], endpoint: String, healthyTimeout: String = "30s",
                deploy: String? = nil, maxUnavailable: Int = 1, extra: String? = nil) -> String {
        directory.write("aws.yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(directory.path)/aws.db
            api_tokens: [{name: ops, token_env: TEST_ROLLGATE_TOKEN}]
            # The fixture is this test's alone: the whole of ELB's refill (AWSCallBudgetTests covers the budget).
            aws: {region: us-east-1, endpoint_url: \(endpoint), describe_per_second: 10, changes_per_second: 10}
            services:
              - name: web
                \(arns.count == 1 ? "target_group_arn: \(arns[0])" : "target_group_arns: [\(arns.joined(separator: ", "))]")
                max_unavailable: \(maxUnavailable)
                poll_interval: 200ms
                drain_timeout: 30s
                healthy_timeout: \(healthyTimeout)
                \(extra ?? "")
                hooks:
                  deploy: \(deploy ?? "env | grep ^ROLLGATE_ | sort > \(directory.path)/$ROLLGATE_TARGET_ID.env")
            """)
    }

    @Test func aFullRollOfThreeInstancesThroughTheELBv2API() async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        let (arn, instances) = try await moto.createTargetGroup()
        #expect(instances.count == 3)
        let environment = ["TEST_ROLLGATE_TOKEN": token, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]
        let server = try RollgateProcess(["serve", "--config", config(arn: arn, endpoint: moto.endpoint)], environment: environment)
        defer { server.kill(SIGTERM) }
        let port = try await server.port()
        let (status, output) = try await RollgateProcess.run(
            ["deploy", "web", "v7", "--follow", "--server", "http://127.0.0.1:\(port)", "--token", token])
        #expect(status == 0, "\(output)")
        #expect(output.contains("run 1 succeeded"))
        let client = HTTPClient(port: port)
        let run = json(try await client.request("GET", "/api/v1/runs/1"))
        #expect(run["steps"]?.array?.map { "\($0["target_id"]!.string!) \($0["phase"]!.string!) \($0["status"]!.string!)" } ==
                instances.flatMap { ["\($0) drain succeeded", "\($0) deploy succeeded", "\($0) restore succeeded"] })
        // The hooks ran with the right environment, one per instance.
        for instance in instances {
            let env = try String(contentsOfFile: directory.path + "/\(instance).env", encoding: .utf8)
            #expect(env.contains("ROLLGATE_TARGET_ID=\(instance)\n") && env.contains("ROLLGATE_TARGET_PORT=8080\n")
                    && env.contains("ROLLGATE_VERSION=v7\n") && env.contains("ROLLGATE_PHASE=deploy\n"), "\(env)")
            // The instance's private address, from EC2 DescribeInstances (moto's subnet 10.0.1.0/24).
            #expect(env.contains("ROLLGATE_TARGET_HOST=10.0.1."), "\(env)")
        }
        // Every instance is registered and healthy again, as the load balancer says.
        let targets = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first?["targets"]?.array ?? []
        #expect(targets.compactMap { $0["id"]?.string } == instances)
        #expect(targets.allSatisfy { $0["state"] == .string("healthy") }, "\(targets)")
        #expect(!server.text.contains("testing\""), "no secret in the log")

        // The plan reads the fixture's group as moto keeps it (ALB defaults: a 300 s delay, 5
        // checks 30 s apart) and this run's three drains, hooks and health passes.
        let plan = json(try await client.request("GET", "/api/v1/services/web/plan"))
        let group = plan["group"] ?? .null
        #expect(group["deregistration_delay_s"] == .number(300) && group["health_check_interval_s"] == .number(30)
                && group["healthy_threshold"] == .number(5), "\(plan)")
        #expect(plan["targets"]?.int == 3 && plan["batches"]?.int == 3)
        #expect(plan["history"]?["drain"]?["samples"]?.int == 3 && plan["history"]?["restore"]?["samples"]?.int == 3, "\(plan)")
        #expect(plan["parts"]?.array?.first?["from"]?.string?.hasPrefix("median of 3 drains") == true, "\(plan)")
        let perTarget: Double = plan["out_of_service_per_target_s"]?.number ?? -1
        let prepare: Double = plan["prepare_s"]?.number ?? 0
        let roll: Double = plan["roll_s"]?.number ?? 0
        #expect(abs(roll - 3 * (perTarget + prepare)) < 0.01, "\(plan)")
        #expect(plan["advice"]?.array?.contains { $0["change"] == .string("health_check_during_roll") } == true, "\(plan)")
        let (planStatus, planOutput) = try await RollgateProcess.run(["plan", "web", "v8", "--server", "http://127.0.0.1:\(port)", "--token", token])
        #expect(planStatus == 0, "\(planOutput)")
        #expect(planOutput.contains("rolling web to v8:\nweb: 3 targets, 1 at a time (3 batches)\n"), "\(planOutput)")
        #expect(planOutput.contains("health check interval 5 s, healthy threshold 2 during the roll: −"), "\(planOutput)")
        let (unknownStatus, unknownOutput) = try await RollgateProcess.run(["plan", "nope", "--server", "http://127.0.0.1:\(port)", "--token", token])
        #expect(unknownStatus != 0 && unknownOutput.contains("no service named nope"), "\(unknownOutput)")
    }

    /// A service behind two load balancers (`target_group_arns`): while a target's hooks run
    /// neither group lists it (moto removes a deregistered target at once), and after the
    /// run every target is healthy in both.
    @Test func aServiceBehindTwoLoadBalancersIsOutOfBothWhileItsHooksRun() async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        let (arns, instances) = try await moto.createTargetGroups(instances: 2, groups: 2)
        #expect(arns.count == 2)
        let check = directory.write("in-groups.py", moto.boto("""
            listed = [any(d["Target"]["Id"] == sys.argv[1] for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]) for arn in sys.argv[2:]]
            print(sys.argv[1], " ".join("listed" if l else "out" for l in listed))
            """))
        // The hook runs with a bare PATH: the python that has boto3, by its full path.
        let python = try await runToEnd("/bin/sh", ["-c", "command -v python3"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let config = config(arns: arns, endpoint: moto.endpoint,
                            deploy: "\(python) \(check) $ROLLGATE_TARGET_ID \(arns[0]) \(arns[1]) >> \(directory.path)/during.txt")
        let environment = ["TEST_ROLLGATE_TOKEN": token, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]
        let server = try RollgateProcess(["serve", "--config", config], environment: environment)
        defer { server.kill(SIGTERM) }
        let client = HTTPClient(port: try await server.port())
        let accepted = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                                body: Array(#"{"service":"web","version":"v4"}"#.utf8))
        #expect(accepted.status == 202)
        let run = try await finished(client, run: 1)
        #expect(run["status"] == .string("succeeded"), "\(run["error"]?.string ?? "")")
        let during = (try? String(contentsOfFile: directory.path + "/during.txt", encoding: .utf8)) ?? ""
        #expect(during == instances.map { "\($0) out out\n" }.joined(), "while its deploy ran: \(during)")
        let service = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first
        #expect(service?["target_groups"]?.array?.compactMap(\.string) == arns)
        let targets = service?["targets"]?.array ?? []
        #expect(targets.count == 2 && targets.allSatisfy { $0["state"] == .string("healthy") }, "\(targets)")
        for arn in arns {
            let listed = try await moto.boto("""
                print(sorted((d["Target"]["Id"], d["TargetHealth"]["State"]) for d in elbv2.describe_target_health(TargetGroupArn=sys.argv[1])["TargetHealthDescriptions"]))
                """, [arn])
            #expect(instances.allSatisfy { listed.contains("('\($0)', 'healthy')") }, "\(arn): \(listed)")
        }
        // check-config --remote checks each group and that every target is in both.
        let (status, output) = try await RollgateProcess.run(["check-config", "--remote", config], environment: environment.merging(["AWS_EC2_METADATA_DISABLED": "true"]) { $1 })
        #expect(status == 0, "\(output)")
        #expect(output.contains("web: 2 target(s) in each of web-tg, web-tg-1"), "\(output)")
    }

    /// `health_check_during_roll` on the ELBv2 wire: the group's health check is tightened for
    /// the roll, shown as changed, and after a kill -9 mid-roll the resumed run puts the
    /// group's own back (never the tightened ones it finds).
    @Test func aTightenedHealthCheckIsPutBackAfterAKillNine() async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        let (arn, instances) = try await moto.createTargetGroup(instances: 2)
        #expect(try await moto.healthCheck(of: arn) == "30 5 5", "moto keeps an ALB's defaults")
        let config = config(arn: arn, endpoint: moto.endpoint, deploy: #"echo "deploy $ROLLGATE_TARGET_ID"; sleep 3"#,
                            extra: "health_check_during_roll: {interval: 5s, healthy_threshold: 2}")
        let environment = ["TEST_ROLLGATE_TOKEN": token, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]
        var server = try RollgateProcess(["serve", "--config", config], environment: environment)
        var port = try await server.port()
        var client = HTTPClient(port: port)
        let accepted = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                                body: Array(#"{"service":"web","version":"v3"}"#.utf8))
        #expect(accepted.status == 202)
        #expect(try await eventually(within: .seconds(60)) {
            let step = json(try await client.request("GET", "/api/v1/runs/1"))["steps"]?.array?.last
            return step?["phase"] == .string("deploy") && step?["target_id"] == .string(instances[0]) && step?["status"] == .string("running")
        }, "never reached the first deploy")
        #expect(try await moto.healthCheck(of: arn) == "5 4 2", "tightened for the roll (the timeout below the interval)")
        let (_, status) = try await RollgateProcess.run(["status", "web", "--server", "http://127.0.0.1:\(port)"])
        #expect(status.contains("health check changed by run 1 for the roll") && status.contains("interval 30s, timeout 5s, healthy threshold 5"), "\(status)")
        server.kill(SIGKILL)
        #expect(try await moto.healthCheck(of: arn) == "5 4 2", "left tightened by the crash")

        server = try RollgateProcess(["serve", "--config", config], environment: environment)
        defer { server.kill(SIGTERM) }
        port = try await server.port()
        client = HTTPClient(port: port)
        let run = try await finished(client, run: 1)
        #expect(run["status"] == .string("succeeded"), "\(run["error"]?.string ?? "")")
        #expect(try await moto.healthCheck(of: arn) == "30 5 5", "the group's own settings are back")
        let service = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first
        #expect(service?["health_check_changed"]?.array?.isEmpty == true, "\(service ?? .null)")
        let lines = (json(try await client.request("GET", "/api/v1/runs/1/logs?limit=5000"))["lines"]?.array ?? []).compactMap { $0["text"]?.string }
        #expect(lines.contains { $0.hasPrefix("health check already tightened for the roll") }, "\(lines)")
        #expect(lines.contains("ModifyTargetGroup: putting the group's own health check back (interval 30s, timeout 5s, healthy threshold 5)"))
    }

    /// Batches against the ELBv2 wire with real timing, on the real store: exactly
    /// `max_unavailable` targets are out at once at some moment, never more.
    @Test(arguments: [(2, 4), (4, 5)])
    func aBatchTakesExactlyMaxUnavailableOutAtOnce(_ batch: Int, _ count: Int) async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        let (arn, instances) = try await moto.createTargetGroup(instances: count)
        let proxy = try await TimingProxy(moto: moto, drain: 1.5, healthy: 1.0, throttle: 0.1, directory: directory)
        defer { proxy.stop() }
        let environment = ["TEST_ROLLGATE_TOKEN": token, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]
        let server = try RollgateProcess(["serve", "--config", config(arn: arn, endpoint: proxy.endpoint, deploy: "sleep 0.5", maxUnavailable: batch)],
                                         environment: environment)
        defer { server.kill(SIGTERM) }
        let port = try await server.port()
        let (status, output) = try await RollgateProcess.run(
            ["deploy", "web", "v3", "--follow", "--server", "http://127.0.0.1:\(port)", "--token", token])
        #expect(status == 0, "\(output)")
        // Out from DeregisterTargets until the load balancer calls it healthy again.
        let out = proxy.outOfService()
        #expect(out.most == batch, "\(batch) out at once at the most, and at some moment: \(proxy.recorded().map { "\($0.0) \($0.1)" })")
        #expect(out.stillOut.isEmpty)
        let targets = json(try await HTTPClient(port: port).request("GET", "/api/v1/services"))["services"]?.array?.first?["targets"]?.array ?? []
        #expect(targets.count == instances.count && targets.allSatisfy { $0["state"] == .string("healthy") }, "\(targets)")
    }

    @Test func badCredentialsFailTheRunAtOnceWithAWSsAnswer() async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        let (arn, _) = try await moto.createTargetGroup(instances: 2)
        // From now on moto checks signatures against its IAM users: ours is unknown.
        _ = try await HTTPClient(port: moto.port).request("POST", "/moto-api/reset-auth", body: Array("0".utf8))
        let environment = ["TEST_ROLLGATE_TOKEN": token, "AWS_ACCESS_KEY_ID": "AKIDWRONG", "AWS_SECRET_ACCESS_KEY": "wrong"]
        let server = try RollgateProcess(["serve", "--config", config(arn: arn, endpoint: moto.endpoint)], environment: environment)
        defer { server.kill(SIGTERM) }
        let port = try await server.port()
        let (status, output) = try await RollgateProcess.run(
            ["deploy", "web", "v8", "--follow", "--server", "http://127.0.0.1:\(port)", "--token", token])
        #expect(status == 1)
        let run = json(try await HTTPClient(port: port).request("GET", "/api/v1/runs/1"))
        #expect(run["status"] == .string("failed"))
        let error = run["error"]?.string ?? ""
        #expect(error.contains("InvalidClientTokenId") || error.contains("SignatureDoesNotMatch"), "\(error) \(output)")
        #expect(run["steps"]?.array?.isEmpty == true, "no target was touched")
    }

    @Test func withRealTimingAndThrottlingHooksNeverStartBeforeTheDrainEnded() async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        let (arn, instances) = try await moto.createTargetGroup()
        let proxy = try await TimingProxy(moto: moto, drain: 1.5, healthy: 1.0, throttle: 0.1, directory: directory)
        defer { proxy.stop() }
        let hook = "date +%s.%N > \(directory.path)/$ROLLGATE_TARGET_ID.started"
        let environment = ["TEST_ROLLGATE_TOKEN": token, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]
        let server = try RollgateProcess(["serve", "--config", config(arn: arn, endpoint: proxy.endpoint, deploy: hook)], environment: environment)
        defer { server.kill(SIGTERM) }
        let port = try await server.port()
        let (status, output) = try await RollgateProcess.run(
            ["deploy", "web", "v9", "--follow", "--server", "http://127.0.0.1:\(port)", "--token", token])
        #expect(status == 0, "\(output)")
        #expect(output.contains("draining (Target.DeregistrationInProgress)") && output.contains("initial (Elb.RegistrationInProgress)"))
        let events = proxy.recorded()
        for instance in instances {
            let drained = try #require(events.first { $0.0 == "drained" && $0.1 == instance }?.2, "\(instance) drained")
            let started = try #require(Double(String(contentsOfFile: directory.path + "/\(instance).started", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(started >= drained, "\(instance): the deploy hook started \(drained - started) s before the drain ended")
        }
        // One target at a time: each target is healthy again before the next is deregistered.
        let order = events.filter { ["deregistered", "healthy"].contains($0.0) }.map { "\($0.0) \($0.1)" }
        #expect(order == instances.flatMap { ["deregistered \($0)", "healthy \($0)"] })
    }

    @Test func aTargetThatNeverGetsHealthyFailsTheRunNearTheTimeoutAndIsTakenOutAgain() async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        let (arn, instances) = try await moto.createTargetGroup()
        let proxy = try await TimingProxy(moto: moto, drain: 0.3, healthy: 0.3, neverHealthy: [instances[1]], directory: directory)
        defer { proxy.stop() }
        let environment = ["TEST_ROLLGATE_TOKEN": token, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]
        let server = try RollgateProcess(["serve", "--config", config(arn: arn, endpoint: proxy.endpoint, healthyTimeout: "3s")],
                                         environment: environment)
        defer { server.kill(SIGTERM) }
        let port = try await server.port()
        let (status, _) = try await RollgateProcess.run(
            ["deploy", "web", "v10", "--follow", "--server", "http://127.0.0.1:\(port)", "--token", token])
        #expect(status == 1)
        let run = json(try await HTTPClient(port: port).request("GET", "/api/v1/runs/1"))
        let error = run["error"]?.string ?? ""
        #expect(error.contains("\(instances[1]) not healthy after 3s") && error.contains("unhealthy (Target.FailedHealthChecks)"), "\(error)")
        let steps = run["steps"]?.array ?? []
        #expect(!steps.contains { $0["target_id"] == .string(instances[2]) }, "the third instance is untouched")
        let restore = try #require(steps.last)
        #expect(restore["phase"] == .string("restore") && restore["status"] == .string("failed"))
        let deregistrations = proxy.recorded().filter { $0.0 == "deregistered" && $0.1 == instances[1] }
        #expect(deregistrations.count == 2, "taken out again after failing its health gate")
    }

    /// kill -9 in every phase against moto behind the timing proxy (real drain and health
    /// timing): after the restart the same run resumes and succeeds, one target out at a time.
    @Test(arguments: ["prepare", "drain", "deploy", "verify", "restore"])
    func killNineDuringAPhaseResumesOverTheWire(_ phase: String) async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        let (arn, instances) = try await moto.createTargetGroup(instances: 2)
        let proxy = try await TimingProxy(moto: moto, drain: 1.0, healthy: 1.0, throttle: 0.1, directory: directory)
        defer { proxy.stop() }
        let config = directory.write("kill.yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(directory.path)/kill.db
            api_tokens: [{name: ops, token_env: TEST_ROLLGATE_TOKEN}]
            aws: {region: us-east-1, endpoint_url: \(proxy.endpoint), describe_per_second: 10, changes_per_second: 10}
            services:
              - name: web
                target_group_arn: \(arn)
                poll_interval: 200ms
                drain_timeout: 30s
                healthy_timeout: 30s
                hooks:
                  prepare: sleep 0.6
                  deploy: echo "deploy attempt $ROLLGATE_ATTEMPT on $ROLLGATE_TARGET_ID"; sleep 0.6
                  verify: sleep 0.6
            """)
        let environment = ["TEST_ROLLGATE_TOKEN": token, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]
        var server = try RollgateProcess(["serve", "--config", config], environment: environment)
        var client = HTTPClient(port: try await server.port())
        let accepted = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                                body: Array(#"{"service":"web","version":"v11"}"#.utf8))
        #expect(accepted.status == 202)
        let reached = try await eventually(within: .seconds(60)) {
            let step = json(try await client.request("GET", "/api/v1/runs/1"))["steps"]?.array?.last
            return step?["phase"] == .string(phase) && step?["target_id"] == .string(instances[1]) && step?["status"] == .string("running")
        }
        #expect(reached, "never reached \(phase) of \(instances[1])")
        server.kill(SIGKILL)

        server = try RollgateProcess(["serve", "--config", config], environment: environment)
        defer { server.kill(SIGTERM) }
        client = HTTPClient(port: try await server.port())
        var run = JSONValue.null
        #expect(try await eventually(within: .seconds(60)) {
            run = json(try await client.request("GET", "/api/v1/runs/1"))
            return run["status"] != .string("running")
        })
        #expect(run["status"] == .string("succeeded"), "\(run["error"]?.string ?? "")")
        let lines = (json(try await client.request("GET", "/api/v1/runs/1/logs?limit=5000"))["lines"]?.array ?? []).compactMap { $0["text"]?.string }
        #expect(lines.contains { $0.hasPrefix("resumed after an interruption during \(phase) of \(instances[1])") }, "\(lines)")
        #expect(!lines.contains("deploy attempt 2 on \(instances[0])"), "the first instance is not rolled twice")
        // As the modelled load balancer saw it: never two instances out at once, both back.
        let out = proxy.outOfService()
        #expect(out.most <= 1, "out at once: \(proxy.recorded())")
        #expect(out.stillOut.isEmpty, "every instance is back: \(out.stillOut)")
        let targets = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first?["targets"]?.array ?? []
        #expect(targets.count == 2 && targets.allSatisfy { $0["state"] == .string("healthy") }, "\(targets)")
        #expect(try await FleetHistory.read(client).runs.count == 1)
    }

    @Test func checkConfigRemoteProvesCredentialsAndTheTargetGroupWithoutChangingAnything() async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        let (arn, _) = try await moto.createTargetGroup(instances: 2)
        let credentials = ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"]
        let good = config(arn: arn, endpoint: moto.endpoint)
        let (status, output) = try await RollgateProcess.run(["check-config", "--remote", good], environment: credentials)
        #expect(status == 0, "\(output)")
        #expect(output.contains("web: \(arn): readable; 2 target(s) registered, 2 healthy; deregistration delay"), "\(output)")
        // The forecast from the group's own settings (moto keeps an ALB's defaults): 300 s
        // drain + 5 x 30 s health = 7 min 30 s a target, two batches.
        for line in ["  web: 2 targets, 1 at a time (2 batches)",
                     "    out of service per target: about 7 min 30 s, bound by the drain (hooks not counted: unknown)",
                     "    whole roll: about 15 min",
                     "      fast drain (quiet 10 s): −4 min 50 s per target (if the app is idle during drains; measure with fast_drain.measure_only)",
                     "      health check interval 5 s, healthy threshold 2 during the roll: −2 min 20 s per target"] {
            #expect(output.contains(line + "\n"), "\(line) in \(output)")
        }
        #expect(output.contains("warning: api_tokens[0].token_env: environment variable TEST_ROLLGATE_TOKEN is not set here"), "an absent token is a warning when linting: \(output)")

        let missing = arn.replacingOccurrences(of: "/web-tg/", with: "/gone-tg/")
        let (missingStatus, missingOutput) = try await RollgateProcess.run(["check-config", "--remote", config(arn: missing, endpoint: moto.endpoint)],
                                                                         environment: credentials)
        #expect(missingStatus == 2)
        #expect(missingOutput.contains("TargetGroupNotFound") && missingOutput.contains("is the ARN right"), "\(missingOutput)")

        let (bareStatus, bareOutput) = try await RollgateProcess.run(["check-config", "--remote", good],
                                                                   environment: ["AWS_EC2_METADATA_DISABLED": "true", "HOME": directory.path])
        #expect(bareStatus == 2)
        #expect(bareOutput.contains("web: no AWS credentials"), "\(bareOutput)")
        #expect(bareOutput.contains("1 service(s) cannot be reached as configured"))
    }

    /// However many people watch, the load balancer is asked at most once per service every
    /// few seconds: counted where the calls arrive, in front of moto.
    @Test func viewersNeverBecomeLoadBalancerCalls() async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        let (arn, _) = try await moto.createTargetGroup(instances: 3)
        let proxy = try await TimingProxy(moto: moto, drain: 0.5, healthy: 0.5, directory: directory)
        defer { proxy.stop() }
        let environment = ["TEST_ROLLGATE_TOKEN": token, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]
        let server = try RollgateProcess(["serve", "--config", config(arn: arn, endpoint: proxy.endpoint)], environment: environment)
        defer { server.kill(SIGTERM) }
        let client = HTTPClient(port: try await server.port())
        let started = ContinuousClock.now
        for index in 0..<60 {
            let path = ["/", "/api/v1/services", "/status.txt"][index % 3]
            #expect(try await client.request("GET", path).status == 200, "\(path)")
        }
        let seconds = (ContinuousClock.now - started).components.seconds
        let calls = proxy.recorded().filter { $0.0 == "call" && $0.1 == "DescribeTargetHealth" }.count
        #expect(calls >= 1, "the first view asked the load balancer once")
        #expect(calls <= 1 + Int(seconds) / 5 + 1, "60 views in \(seconds) s made \(calls) DescribeTargetHealth calls")
        // rollgate's own count agrees with what arrived.
        let metrics = String(decoding: try await client.request("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains(#"rollgate_load_balancer_calls_total{operation="DescribeTargetHealth",code="ok"} \#(calls)"#), "\(metrics)")
    }
}
