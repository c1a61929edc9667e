import Foundation
import Testing
import MicroHTTP
import Rollgate

/// A moto_server (the AWS emulator) on a free loopback port, stopped by its PID.
final class MotoServer: @unchecked Sendable {
    // @unchecked: set up once in init, then only read.
    let process = Process()
    let port: UInt16
    let directory = TempDirectory()
    var endpoint: String { "http://127.0.0.1:\(port)" }

    init() async throws {
        port = try await freePort()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", "\(port)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let client = HTTPClient(port: port, timeoutSeconds: 2)
        guard try await eventually(within: .seconds(30), { (try? await client.request("GET", "/moto-api/")) != nil }) else {
            process.terminate()
            throw TestFailure("moto_server did not start on port \(port): is moto installed? (make test installs it: pip install 'moto[server]')")
        }
    }

    /// Creates the load balancer, target group and instances; returns (group ARN, instance ids).
    func createTargetGroup(instances: Int = 3) async throws -> (String, [String]) {
        let output = directory.path + "/fixture.json"
        let script = Process()
        script.executableURL = URL(fileURLWithPath: "/bin/sh")
        script.arguments = ["-c", "python3 \"$0\" \"$1\" \"$2\" > \"$3\"",
                            repositoryRoot + "/Tests/RollgateTests/Support/moto_fixture.py", endpoint, "\(instances)", output]
        try script.run()
        _ = try await eventually(within: .seconds(60)) { !script.isRunning }
        script.waitUntilExit()
        let data = FileManager.default.contents(atPath: output) ?? Data()
        guard script.terminationStatus == 0, let created = JSONValue.parse([UInt8](data)),
              let arn = created["target_group_arn"]?.string else {
            throw TestFailure("moto_fixture.py failed: \(String(decoding: data, as: UTF8.self))")
        }
        return (arn, created["instances"]?.array?.compactMap(\.string) ?? [])
    }

    /// moto's development server does not stop on SIGTERM while serving: KILL it.
    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// A port nothing listens on now: bound by a throwaway server, then released.
func freePort() async throws -> UInt16 {
    let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0), handler: { _ in HTTPResponse() })
    try server.start()
    let port = server.port
    await server.stop()
    return port
}

@Suite(.serialized) struct MotoTests {
    let directory = TempDirectory()
    let token = "moto-test-token-0123456789"

    func config(arn: String, endpoint: String) -> String {
        directory.write("aws.yaml", """
            listen: 127.0.0.1:0
            database: \(directory.path)/aws.db
            api_tokens: [{name: ops, token_env: TEST_ROLLGATE_TOKEN}]
            aws: {region: us-east-1, endpoint_url: \(endpoint)}
            services:
              - name: web
                target_group_arn: \(arn)
                poll_interval: 200ms
                drain_timeout: 30s
                healthy_timeout: 30s
                hooks:
                  deploy: env | grep ^ROLLGATE_ | sort > \(directory.path)/$ROLLGATE_TARGET_ID.env
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
        }
        // Every instance is registered and healthy again, as the load balancer says.
        let targets = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first?["targets"]?.array ?? []
        #expect(targets.compactMap { $0["id"]?.string } == instances)
        #expect(targets.allSatisfy { $0["state"] == .string("healthy") }, "\(targets)")
        #expect(!server.text.contains("testing\""), "no secret in the log")
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
}
