import Foundation
import MetricsTestKit
import Synchronization
import Testing
@testable import ELB
import Outbound
import Rollout
import RolloutTesting

/// The answer part of a captured exchange: status and body.
func capturedAnswer(_ name: String) throws -> (Int, [UInt8]) {
    let text = try fixture("elbv2-wire/\(name)").replacingOccurrences(of: "\r\n", with: "\n")
    guard let marker = text.range(of: "=== RESPONSE ===") else { throw TestFailure("no response in \(name)") }
    let response = text[marker.upperBound...].drop { $0 == "\n" }
    let status = Int(response.split(separator: " ")[1])!
    guard let blank = response.range(of: "\n\n") else { throw TestFailure("no body in \(name)") }
    return (status, Array(response[blank.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines).utf8))
}

struct TestFailure: Error { let text: String; init(_ text: String) { self.text = text } }

/// Answers from a script and records what was sent.
final class ScriptedTransport: AWSTransport {
    private let state: Mutex<(answers: [(Int, [UInt8])], sent: [(headers: [(String, String)], body: String)])>
    init(_ answers: [(Int, [UInt8])]) { state = Mutex((answers, [])) }
    var sent: [(headers: [(String, String)], body: String)] { state.withLock { $0.sent } }

    func post(_ endpoint: AWSEndpoint, headers: [(String, String)], body: [UInt8], timeout: Duration) async throws -> (status: Int, body: [UInt8]) {
        try state.withLock { state in
            state.sent.append((headers, String(decoding: body, as: UTF8.self)))
            guard !state.answers.isEmpty else { throw TransportError(description: "connection refused") }
            return state.answers.removeFirst()
        }
    }
}

struct FixedCredentials: AWSCredentialProvider {
    func credentials() async throws -> AWSCredentials { AWSCredentials(accessKeyID: "AKIDTEST", secretAccessKey: "secret") }
}

let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/demo-tg/b2977d74eb410135"
let throttled: (Int, [UInt8]) = (400, Array("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r1</RequestId></ErrorResponse>".utf8))

@Suite struct ELBv2ClientTests {
    let clock = ManualClock()

    func client(_ transport: ScriptedTransport, retry: RetryPolicy = RetryPolicy(), metrics: RollMetrics = RollMetrics()) -> ELBv2Client {
        ELBv2Client(endpoint: AWSEndpoint(url: "http://127.0.0.1:45124")!, region: "us-east-1", credentials: FixedCredentials(),
                    transport: transport, clock: clock, retry: retry, random: { 1.0 }, metrics: metrics)
    }

    @Test func readsTargetHealthFromTheCapturedAnswer() async throws {
        let transport = ScriptedTransport([try capturedAnswer("008-DescribeTargetHealth.http")])
        let targets = [Target(id: "i-1653e28ddc3729f1b", port: 8080), Target(id: "i-c400820fd85a53840", port: 8080)]
        let health = try await client(transport).describeTargetHealth(targetGroupARN: arn, targets: targets)
        #expect(health.first?.target == targets[0])
        #expect(health.first?.health == TargetHealth(.unused, reason: "Target.NotRegistered"))
        // The request names the targets asked about, signed as botocore signs.
        let sent = try #require(transport.sent.first)
        #expect(sent.body == "Action=DescribeTargetHealth&Version=2015-12-01&TargetGroupArn=arn%3Aaws%3Aelasticloadbalancing%3Aus-east-1%3A123456789012%3Atargetgroup%2Fdemo-tg%2Fb2977d74eb410135&Targets.member.1.Id=i-1653e28ddc3729f1b&Targets.member.1.Port=8080&Targets.member.2.Id=i-c400820fd85a53840&Targets.member.2.Port=8080")
        let authorization = try #require(sent.headers.first { $0.0 == "Authorization" }?.1)
        #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDTEST/"))
        #expect(authorization.contains("/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="))
    }

    @Test func readsDrainingEmptyAndAttributes() async throws {
        let draining = try fixture("elbv2-wire/canned_describe_target_health_draining.xml")
        let transport = ScriptedTransport([(200, Array(draining.utf8)), try capturedAnswer("032-DescribeTargetHealth.http"),
                                           try capturedAnswer("004-DescribeTargetGroupAttributes.http")])
        let c = client(transport)
        #expect(try await c.describeTargetHealth(targetGroupARN: arn).map(\.health) ==
                [TargetHealth(.draining, reason: "Target.DeregistrationInProgress")])
        #expect(try await c.describeTargetHealth(targetGroupARN: arn).isEmpty)
        #expect(try await c.describeTargetGroupAttributes(arn: arn)["deregistration_delay.timeout_seconds"] == "30")
    }

    @Test func errorsCarryCodeMessageAndRequestIDInBothShapes() async throws {
        let transport = ScriptedTransport([try capturedAnswer("009-DescribeTargetHealth.http")])
        await #expect(throws: AWSError(code: "TargetGroupNotFound", message: "One or more target groups not found", status: 400,
                                       requestID: "FbLXRbqe0625kmBiYW8hiqYLrwQxsZsdc1qERB4pHtAJ9awDL1O5")) {
            _ = try await client(transport).describeTargetHealth(targetGroupARN: arn)
        }
        #expect(clock.sleeps.isEmpty, "a missing group is not retried")
        let moto = AWSError.parse(Array("<Response><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>bad</Message></Error></Errors><RequestID>x</RequestID></Response>".utf8), status: 403)
        #expect(moto == AWSError(code: "SignatureDoesNotMatch", message: "bad", status: 403, requestID: "x"))
        #expect(!moto.isRetryable)
        #expect(AWSError.parse(Array("<html>oops</html>".utf8), status: 502).isRetryable)
    }

    @Test func throttlingAnd5xxAreRetriedWithSmallGrowingCappedWaits() async throws {
        let transport = ScriptedTransport([throttled, (500, []), (503, Array("busy".utf8)), throttled,
                                           try capturedAnswer("005-RegisterTargets.http")])
        try await client(transport).registerTargets(targetGroupARN: arn, [Target(id: "i-1", port: 80)])
        #expect(transport.sent.count == 5)
        // random() is 1.0 here: the full ceiling, 100 ms doubling.
        #expect(clock.sleeps == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800)])
        #expect(RetryPolicy().delay(afterAttempt: 10, random: 1.0) == .seconds(2), "capped")
        #expect(RetryPolicy().delay(afterAttempt: 0, random: 0.0) == .milliseconds(50), "jitter down to half")
    }

    @Test func everyAttemptIsCountedByOperationAndCode() async throws {
        let recorded = TestMetrics()
        let transport = ScriptedTransport([throttled, (503, Array("busy".utf8)), try capturedAnswer("005-RegisterTargets.http")])
        try await client(transport, metrics: RollMetrics(factory: recorded)).registerTargets(targetGroupARN: arn, [Target(id: "i-1", port: 80)])
        let calls = { (code: String) in recorded.counterTotal(label: "rollgate_load_balancer_calls_total",
                                                              dimensions: [("operation", "RegisterTargets"), ("code", code)]) }
        #expect(calls("Throttling") == 1 && calls("HTTP503") == 1 && calls("ok") == 1)
        #expect(try recorded.expectTimer("rollgate_load_balancer_call_duration_seconds", [("operation", "RegisterTargets")]).values.count == 3)
    }

    @Test func connectionErrorsAreRetriedThenReported() async throws {
        let transport = ScriptedTransport([])
        await #expect { try await client(transport, retry: RetryPolicy(attempts: 3)).deregisterTargets(targetGroupARN: arn, [Target(id: "i-1", port: 80)]) }
            throws: { ($0 as? AWSError)?.code == "ConnectionError" }
        #expect(transport.sent.count == 3)
    }

    @Test func theLoadBalancerPortMapsInvalidTargetToNotFound() async throws {
        let invalid: (Int, [UInt8]) = (400, Array("<ErrorResponse><Error><Code>InvalidTarget</Code><Message>not registered</Message></Error></ErrorResponse>".utf8))
        let transport = ScriptedTransport([invalid, throttled, throttled])
        let lb = ELBLoadBalancer(client: client(transport, retry: RetryPolicy(attempts: 2)), targetGroupARN: arn)
        #expect(try await lb.health(of: Target(id: "i-9", port: 80)) == .notFound)
        await #expect(throws: LoadBalancerError(code: "Throttling", message: "Rate exceeded", isRetryable: true)) {
            _ = try await lb.health(of: Target(id: "i-9", port: 80))
        }
    }
}

@Suite struct EC2ClientTests {
    @Test func findsAnInstancesPrivateAddressSignedForEC2() async throws {
        let answer = """
            <?xml version="1.0" encoding="utf-8"?>
            <DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><reservationSet><item><instancesSet><item>
            <networkInterfaceSet><item><privateIpAddress>10.9.9.9</privateIpAddress></item></networkInterfaceSet>
            <instanceId>i-0abc</instanceId><privateIpAddress>10.0.1.4</privateIpAddress></item></instancesSet></item></reservationSet>
            <requestId>r</requestId></DescribeInstancesResponse>
            """
        let transport = ScriptedTransport([(200, Array(answer.utf8)), (200, Array("<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>".utf8))])
        let ec2 = EC2Client(endpoint: AWSEndpoint(url: "http://127.0.0.1:5000")!, region: "eu-west-1", credentials: FixedCredentials(),
                            transport: transport, clock: ManualClock())
        #expect(try await ec2.privateAddress(ofInstance: "i-0abc") == "10.0.1.4")
        #expect(try await ec2.privateAddress(ofInstance: "i-gone") == nil)
        #expect(transport.sent[0].body == "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0abc")
        #expect(transport.sent[0].headers.first { $0.0 == "Authorization" }?.1.contains("/eu-west-1/ec2/aws4_request") == true)
        let lb = ELBLoadBalancer(client: ELBv2Client(endpoint: .elbv2(region: "eu-west-1"), region: "eu-west-1", credentials: FixedCredentials(),
                                                     transport: ScriptedTransport([])), targetGroupARN: arn, ec2: nil)
        #expect(try await lb.host(of: Target(id: "10.0.2.7", port: 80)) == "10.0.2.7", "an IP target is its own address")
        #expect(try await lb.host(of: Target(id: "i-0abc", port: 80)) == nil, "no EC2 client: no address")
    }
}

@Suite struct CredentialChainTests {
    let directory: String = {
        let path = NSTemporaryDirectory() + "rollgate-aws-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    func write(_ name: String, _ text: String) -> String {
        let path = directory + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    @Test func environmentFirstWithSessionToken() throws {
        let chain = CredentialChain(environment: ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t",
                                                  "AWS_PROFILE": "other", "AWS_REGION": "eu-west-1"], http: CurlHTTP())
        #expect(try chain.resolve() == AWSCredentials(accessKeyID: "AKIDENV", secretAccessKey: "s", sessionToken: "t"))
        #expect(chain.region() == "eu-west-1")
        #expect(throws: CredentialsError.self) { try CredentialChain(environment: ["AWS_ACCESS_KEY_ID": "x"], http: CurlHTTP()).resolve() }
    }

    @Test func profilesFromTheSharedFiles() throws {
        let credentials = write("credentials", """
            [default]
            aws_access_key_id = AKIDDEFAULT
            aws_secret_access_key = d

            # staging
            [staging]
            aws_access_key_id=AKIDSTAGING
            aws_secret_access_key=s2
            aws_session_token = tok
            """)
        let config = write("config", """
            [default]
            region = us-west-2
            [profile staging]
            region = ap-south-1
            [profile onlyconfig]
            aws_access_key_id = AKIDCONFIG
            aws_secret_access_key = c
            """)
        let base = ["AWS_SHARED_CREDENTIALS_FILE": credentials, "AWS_CONFIG_FILE": config]
        #expect(try CredentialChain(environment: base, http: CurlHTTP()).resolve().accessKeyID == "AKIDDEFAULT")
        #expect(CredentialChain(environment: base, http: CurlHTTP()).region() == "us-west-2")
        let staging = CredentialChain(environment: base.merging(["AWS_PROFILE": "staging"]) { a, _ in a }, http: CurlHTTP())
        #expect(try staging.resolve() == AWSCredentials(accessKeyID: "AKIDSTAGING", secretAccessKey: "s2", sessionToken: "tok"))
        #expect(staging.region() == "ap-south-1")
        #expect(try CredentialChain(environment: base.merging(["AWS_PROFILE": "onlyconfig"]) { a, _ in a }, http: CurlHTTP()).resolve().accessKeyID == "AKIDCONFIG")
        #expect { try CredentialChain(environment: base.merging(["AWS_PROFILE": "nope"]) { a, _ in a }, http: CurlHTTP()).resolve() }
            throws: { "\($0)".contains("no AWS credentials") }
    }

    @Test func endpointsParseAndSignTheRightHost() {
        #expect(AWSEndpoint(url: "http://127.0.0.1:4566")?.hostHeader == "127.0.0.1:4566")
        #expect(AWSEndpoint(url: "https://elasticloadbalancing.us-east-1.amazonaws.com:443/")?.hostHeader == "elasticloadbalancing.us-east-1.amazonaws.com")
        #expect(AWSEndpoint(url: "http://Example.com:80")?.hostHeader == "example.com")
        #expect(AWSEndpoint(url: "ftp://x") == nil)
        #expect(AWSEndpoint.elbv2(region: "eu-west-1").description == "https://elasticloadbalancing.eu-west-1.amazonaws.com/")
    }
}
