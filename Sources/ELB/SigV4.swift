import Crypto
import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Credentials as AWS issues them; the secret never appears in `description`.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// When temporary credentials stop working (session, instance metadata); nil: never.
    public var expiration: Date?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Date? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }

    public var description: String { "AWSCredentials(\(accessKeyID), secret redacted\(sessionToken == nil ? "" : ", with session token"))" }
}

/// Signature Version 4, as botocore signs ELBv2 Query requests: the headers given are
/// signed together with `host` and `x-amz-date` (and `x-amz-security-token` with session
/// credentials); the payload hash is the SHA-256 of the exact body.
public struct SigV4Signer: Sendable {
    public let credentials: AWSCredentials
    public let region: String
    public let service: String

    public init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// A request as the signer sees it. `path` is already URI-encoded; `query` is raw pairs.
    public struct Request: Sendable {
        public var method: String
        public var host: String
        public var path: String
        public var query: [(String, String)]
        /// Headers to sign besides host, x-amz-date and x-amz-security-token.
        public var headers: [(String, String)]
        public var body: [UInt8]

        public init(method: String, host: String, path: String = "/", query: [(String, String)] = [],
                    headers: [(String, String)] = [], body: [UInt8] = []) {
            self.method = method
            self.host = host
            self.path = path
            self.query = query
            self.headers = headers
            self.body = body
        }
    }

    /// What signing produced: the headers to send and the intermediate texts (for tests).
    public struct Signed: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String
        public var authorization: String
        /// `X-Amz-Date`, `Authorization` and, with a session token, `X-Amz-Security-Token`.
        public var headers: [(String, String)]
    }

    public func sign(_ request: Request, at date: Date) -> Signed {
        let amzDate = SigV4Signer.amzDate(date)
        let day = String(amzDate.prefix(8))
        var signedHeaders: [(String, String)] = request.headers.map { ($0.0.lowercased(), SigV4Signer.trim($0.1)) }
        signedHeaders.append(("host", request.host))
        signedHeaders.append(("x-amz-date", amzDate))
        if let token = credentials.sessionToken { signedHeaders.append(("x-amz-security-token", token)) }
        signedHeaders.sort { $0.0 < $1.0 }
        let names = signedHeaders.map(\.0).joined(separator: ";")
        let encodedQuery: [(name: String, value: String)] = request.query.map {
            (SigV4Signer.uriEncode($0.0), SigV4Signer.uriEncode($0.1))
        }
        let sortedQuery = encodedQuery.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        let canonicalQuery = sortedQuery.map { pair in pair.name + "=" + pair.value }.joined(separator: "&")
        let payloadHash = SigV4Signer.hex(SHA256.hash(data: request.body))
        let canonicalHeaders: String = signedHeaders.map { header in header.0 + ":" + header.1 + "\n" }.joined()
        let canonicalParts: [String] = [request.method, request.path, canonicalQuery, canonicalHeaders, names, payloadHash]
        let canonicalRequest = canonicalParts.joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope,
                            SigV4Signer.hex(SHA256.hash(data: Array(canonicalRequest.utf8)))].joined(separator: "\n")
        let key = signingKey(day: day)
        let signature = SigV4Signer.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(names), Signature=\(signature)"
        var headers = [("X-Amz-Date", amzDate), ("Authorization", authorization)]
        if let token = credentials.sessionToken { headers.append(("X-Amz-Security-Token", token)) }
        return Signed(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                      authorization: authorization, headers: headers)
    }

    public func signingKey(day: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return key
    }

    /// `20150830T123600Z`.
    public static func amzDate(_ date: Date) -> String {
        // Whole seconds: SigV4 dates have no fraction.
        let t = UTCTime(Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down)))
        func pad(_ v: Int64, _ width: Int) -> String {
            let text = String(v)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(t.year, 4))\(pad(t.month, 2))\(pad(t.day, 2))T\(pad(t.hour, 2))\(pad(t.minute, 2))\(pad(t.second, 2))Z"
    }

    /// RFC 3986 unreserved characters stay; everything else is %XX, upper-case (a space
    /// too, unless `spaceAsPlus`, as form bodies write it).
    public static func uriEncode(_ text: String, spaceAsPlus: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                 UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: " ") where spaceAsPlus:
                out += "+"
            default:
                out += "%" + hexUpper(byte)
            }
        }
        return out
    }

    static func hexUpper(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }

    /// Header values: leading and trailing space removed, inner runs of spaces made one.
    static func trim(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef")
        var out = ""
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return out
    }
}
