import Foundation
import Testing
@testable import ELB

let fixtures: String = {
    var path = #filePath
    path = String(path[..<path.lastIndex(of: "/")!])
    return path + "/Fixtures"
}()

func fixture(_ name: String) throws -> String {
    try String(contentsOfFile: fixtures + "/" + name, encoding: .utf8)
}

struct BotocoreVector: Decodable {
    struct Credentials: Decodable { let access_key_id: String; let secret_access_key: String; let session_token: String? }
    struct Request: Decodable {
        let method: String; let url: String; let host: String; let path: String; let body: String
        let body_params_in_order: [[String]]
        let wire_headers: [String: String]
    }
    struct Expected: Decodable {
        let canonical_request: String; let string_to_sign: String; let signing_key_hex: String
        let signature: String; let authorization: String; let payload_sha256: String
    }
    let name: String; let operation: String; let credentials: Credentials; let region: String
    let service: String; let amz_date: String; let request: Request; let expected: Expected
}

func date(amz: String) -> Date {
    // 20260520T123456Z
    var components = DateComponents()
    let digits = Array(amz)
    func number(_ range: Range<Int>) -> Int { Int(String(digits[range]))! }
    components.year = number(0..<4); components.month = number(4..<6); components.day = number(6..<8)
    components.hour = number(9..<11); components.minute = number(11..<13); components.second = number(13..<15)
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    return calendar.date(from: components)!
}

@Suite struct SigV4Tests {
    static let vectors: [BotocoreVector] = {
        struct File: Decodable { let vectors: [BotocoreVector] }
        let data = try! Data(contentsOf: URL(fileURLWithPath: fixtures + "/botocore-elbv2.json"))
        return try! JSONDecoder().decode(File.self, from: data).vectors
    }()

    @Test(arguments: SigV4Tests.vectors.map(\.name))
    func matchesBotocoreByteForByte(name: String) throws {
        let vector = try #require(SigV4Tests.vectors.first { $0.name == name })
        var form = QueryForm(action: vector.operation, version: "2015-12-01")
        for pair in vector.request.body_params_in_order.dropFirst(2) { form.add(pair[0], pair[1]) }
        #expect(form.encoded == vector.request.body, "the body botocore sends")
        let signer = SigV4Signer(credentials: AWSCredentials(accessKeyID: vector.credentials.access_key_id,
                                                             secretAccessKey: vector.credentials.secret_access_key,
                                                             sessionToken: vector.credentials.session_token),
                                 region: vector.region, service: vector.service)
        let request = SigV4Signer.Request(method: "POST", host: vector.request.host, path: vector.request.path,
                                          headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
                                          body: Array(vector.request.body.utf8))
        let signed = signer.sign(request, at: date(amz: vector.amz_date))
        #expect(signed.canonicalRequest == vector.expected.canonical_request)
        #expect(signed.stringToSign == vector.expected.string_to_sign)
        #expect(signer.signingKey(day: String(vector.amz_date.prefix(8))).withUnsafeBytes { SigV4Signer.hex($0) } == vector.expected.signing_key_hex)
        #expect(signed.signature == vector.expected.signature)
        #expect(signed.authorization == vector.expected.authorization)
        let sent = Dictionary(uniqueKeysWithValues: signed.headers)
        #expect(sent["X-Amz-Date"] == vector.request.wire_headers["X-Amz-Date"])
        #expect(sent["X-Amz-Security-Token"] == vector.request.wire_headers["X-Amz-Security-Token"])
    }

    /// AWS's own suite (aws-c-auth): the GET cases and the unsigned-body POST case.
    @Test(arguments: ["get-vanilla", "get-vanilla-query-order-key-case", "get-vanilla-with-session-token", "post-vanilla"])
    func matchesTheAWSSuite(name: String) throws {
        struct Context: Decodable {
            struct Credentials: Decodable { let access_key_id: String; let secret_access_key: String; let token: String? }
            let credentials: Credentials; let region: String; let service: String; let timestamp: String
        }
        let context = try JSONDecoder().decode(Context.self, from: Data(try fixture("aws-c-auth/\(name)/context.json").utf8))
        let requestLines = try fixture("aws-c-auth/\(name)/request.txt").components(separatedBy: "\n")
        let requestLine = requestLines[0].split(separator: " ")
        let target = String(requestLine[1])
        let path = String(target.split(separator: "?", maxSplits: 1)[0])
        let query: [(String, String)] = target.contains("?")
            ? target.split(separator: "?", maxSplits: 1)[1].split(separator: "&").map {
                let parts = $0.split(separator: "=", maxSplits: 1).map(String.init)
                return (parts[0], parts.count > 1 ? parts[1] : "")
            } : []
        let host = requestLines.first { $0.lowercased().hasPrefix("host:") }!.dropFirst(5).trimmingCharacters(in: .whitespaces)
        let signer = SigV4Signer(credentials: AWSCredentials(accessKeyID: context.credentials.access_key_id,
                                                             secretAccessKey: context.credentials.secret_access_key,
                                                             sessionToken: context.credentials.token),
                                 region: context.region, service: context.service)
        let when = date(amz: context.timestamp.replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: ""))
        let signed = signer.sign(.init(method: String(requestLine[0]), host: host, path: path, query: query), at: when)
        #expect(signed.canonicalRequest == (try fixture("aws-c-auth/\(name)/header-canonical-request.txt")))
        #expect(signed.stringToSign == (try fixture("aws-c-auth/\(name)/header-string-to-sign.txt")))
        #expect(signed.signature == (try fixture("aws-c-auth/\(name)/header-signature.txt")))
    }

    @Test func credentialsNeverPrintTheSecret() {
        let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "very-secret", sessionToken: "tok")
        #expect(!"\(credentials)".contains("very-secret") && !"\(credentials)".contains("tok\""))
    }
}
