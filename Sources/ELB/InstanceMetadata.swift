#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Outbound
import Rollout

/// Credentials from EC2 instance metadata (IMDSv2): PUT a session token, then GET the
/// role's credentials with it. Kept until five minutes before they expire, then fetched
/// again. The endpoint is `AWS_EC2_METADATA_SERVICE_ENDPOINT` or http://169.254.169.254.
public actor InstanceMetadataCredentials: AWSCredentialProvider {
    let endpoint: String
    let clock: any RolloutClock
    let http: any OutboundHTTP
    private var cached: AWSCredentials?

    public init(endpoint: String = "http://169.254.169.254", http: any OutboundHTTP, clock: any RolloutClock = SystemClock()) {
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.http = http
        self.clock = clock
    }

    /// Refreshed this long before they expire.
    public static let refreshAhead: Duration = .seconds(300)

    public func credentials() async throws -> AWSCredentials {
        if let cached, let expiration = cached.expiration, clock.now.adding(InstanceMetadataCredentials.refreshAhead) < expiration {
            return cached
        }
        let fresh = try await fetch()
        cached = fresh
        return fresh
    }

    private func fetch() async throws -> AWSCredentials {
        let token = try await send("PUT", "/latest/api/token", headers: ["X-aws-ec2-metadata-token-ttl-seconds": "21600"])
        let auth = ["X-aws-ec2-metadata-token": String(decoding: token, as: UTF8.self)]
        let roles = String(decoding: try await send("GET", "/latest/meta-data/iam/security-credentials/", headers: auth), as: UTF8.self)
        guard let role = roles.split(whereSeparator: \.isNewline).first.map(String.init), !role.isEmpty else {
            throw CredentialsError(description: "instance metadata lists no IAM role: attach an instance profile")
        }
        let body = try await send("GET", "/latest/meta-data/iam/security-credentials/\(role)", headers: auth)
        struct Answer: Decodable {
            let AccessKeyId: String
            let SecretAccessKey: String
            let Token: String?
            let Expiration: String?
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(body)) else {
            throw CredentialsError(description: "instance metadata answered credentials that do not parse")
        }
        return AWSCredentials(accessKeyID: answer.AccessKeyId, secretAccessKey: answer.SecretAccessKey,
                              sessionToken: answer.Token, expiration: answer.Expiration.flatMap(InstanceMetadataCredentials.parseTime))
    }

    private func send(_ method: String, _ path: String, headers: [String: String]) async throws -> [UInt8] {
        let request = OutboundRequest(method: method, url: endpoint + path, headers: headers.map { ($0.key, $0.value) },
                                      timeout: .seconds(2))
        let response: OutboundResponse
        do {
            response = try await http.send(request)
        } catch {
            throw CredentialsError(description: "instance metadata at \(endpoint) did not answer: \(error)")
        }
        guard response.status == 200 else {
            throw CredentialsError(description: "instance metadata answered HTTP \(response.status) to \(method) \(path)")
        }
        return response.body
    }

    /// `2026-11-24T21:00:00Z`.
    static func parseTime(_ text: String) -> Date? {
        let digits = text.filter(\.isNumber).map { Int(String($0))! }
        guard digits.count >= 14 else { return nil }
        func number(_ range: Range<Int>) -> Int { digits[range].reduce(0) { $0 * 10 + $1 } }
        var components = DateComponents()
        components.year = number(0..<4); components.month = number(4..<6); components.day = number(6..<8)
        components.hour = number(8..<10); components.minute = number(10..<12); components.second = number(12..<14)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: components)
    }
}
