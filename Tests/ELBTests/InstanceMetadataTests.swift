import Foundation
import Synchronization
import Testing
@testable import ELB
import MicroHTTP
import Outbound
import Rollout
import RolloutTesting

/// A fake EC2 instance metadata service (IMDSv2) on a loopback port.
final class FetchCounter: Sendable {
    private let count = Mutex(0)
    func next() -> Int { count.withLock { $0 += 1; return $0 } }
    var value: Int { count.withLock { $0 } }
}

final class FakeMetadataService: Sendable {
    let server: HTTPServer
    private let fetches = FetchCounter()
    var credentialFetches: Int { fetches.value }

    init(expiration: @escaping @Sendable () -> String) throws {
        let counter = fetches
        var router = Router()
        router.add("PUT", "/latest/api/token") { request in
            request.header("x-aws-ec2-metadata-token-ttl-seconds") == "21600"
                ? HTTPResponse(contentType: "text/plain", text: "session-token-1")
                : HTTPResponse(status: 400, contentType: "text/plain", text: "no ttl")
        }
        router.get("/latest/meta-data/iam/security-credentials/") { request in
            request.header("x-aws-ec2-metadata-token") == "session-token-1"
                ? HTTPResponse(contentType: "text/plain", text: "deploy-role\n")
                : HTTPResponse(status: 401, contentType: "text/plain", text: "")
        }
        router.get("/latest/meta-data/iam/security-credentials/{role}") { request in
            guard request.header("x-aws-ec2-metadata-token") == "session-token-1", request.parameters["role"] == "deploy-role" else {
                return HTTPResponse(status: 404, contentType: "text/plain", text: "")
            }
            let n = counter.next()
            return HTTPResponse(contentType: "application/json", text: """
                {"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAMETA\(n)","SecretAccessKey":"meta-secret","Token":"meta-token-\(n)","Expiration":"\(expiration())"}
                """)
        }
        server = HTTPServer(configuration: HTTPServerConfiguration(port: 0), router: router)
        try server.start()
    }

    var endpoint: String { "http://127.0.0.1:\(server.port)" }
}

@Suite struct InstanceMetadataTests {
    @Test func fetchesWithATokenAndRefreshesBeforeExpiry() async throws {
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))   // 2027-01-15T08:00:00Z
        let imds = try FakeMetadataService(expiration: { "2027-01-15T08:20:00Z" })
        let provider = InstanceMetadataCredentials(endpoint: imds.endpoint, http: CurlHTTP(), clock: clock)
        let first = try await provider.credentials()
        #expect(first == AWSCredentials(accessKeyID: "ASIAMETA1", secretAccessKey: "meta-secret", sessionToken: "meta-token-1",
                                        expiration: Date(timeIntervalSince1970: 1_800_001_200)))
        clock.advance(by: .seconds(14 * 60))
        #expect(try await provider.credentials().accessKeyID == "ASIAMETA1", "kept while more than 5 minutes are left")
        #expect(imds.credentialFetches == 1)
        clock.advance(by: .seconds(2 * 60))
        #expect(try await provider.credentials().accessKeyID == "ASIAMETA2", "fetched again 4 minutes before expiry")
        await imds.server.stop()
    }

    @Test func theChainFallsBackToMetadataOnlyWhenNothingElseIsConfigured() async throws {
        let imds = try FakeMetadataService(expiration: { "2099-01-01T00:00:00Z" })
        let empty = ["HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint]
        #expect(try await CredentialChain(environment: empty, http: CurlHTTP()).credentials().accessKeyID == "ASIAMETA1")
        let withKeys = empty.merging(["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s"]) { a, _ in a }
        #expect(try await CredentialChain(environment: withKeys, http: CurlHTTP()).credentials().accessKeyID == "AKIDENV")
        let disabled = empty.merging(["AWS_EC2_METADATA_DISABLED": "true"]) { a, _ in a }
        await #expect { try await CredentialChain(environment: disabled, http: CurlHTTP()).credentials() } throws: { "\($0)".hasPrefix("no AWS credentials") }
        await imds.server.stop()
        let unreachable = ["HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint]
        await #expect { try await CredentialChain(environment: unreachable, http: CurlHTTP()).credentials() } throws: {
            "\($0)".contains("no AWS credentials") && "\($0)".contains("instance metadata")
        }
    }
}
