import Configuration
import WireFormat
import Crypto
import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why a signed request was refused (401). Each names what was wrong, never the secret.
public enum SignatureFailure: Error, Equatable, CustomStringConvertible {
    case missing(String)
    case malformed(String)
    case mismatch
    /// The timestamp is outside the window (stale, or from the future).
    case stale(seconds: Int64)
    /// The same delivery was seen before.
    case replayed

    public var description: String {
        switch self {
        case .missing(let header): return "the \(header) header is missing"
        case .malformed(let what): return "\(what) is malformed"
        case .mismatch: return "the signature does not match the body"
        case .stale(let seconds): return "the timestamp is \(seconds) s away from now (at most 300 s allowed): stale or replayed"
        case .replayed: return "this delivery was seen before: replayed"
        }
    }
}

/// The providers' signing schemes, checked in constant time.
public enum WebhookSignature {
    /// How far a signed timestamp may be from now.
    public static let window: Int64 = 300

    /// GitHub: `X-Hub-Signature-256: sha256=HEX(HMAC-SHA256(secret, body))`.
    public static func github(body: [UInt8], header: String?, secret: String) -> SignatureFailure? {
        guard let header else { return .missing("X-Hub-Signature-256") }
        guard header.hasPrefix("sha256="), let presented = hexBytes(header.dropFirst(7)) else {
            return .malformed("X-Hub-Signature-256 (expected sha256=HEX)")
        }
        return constantTimeEqual(presented, hmac(key: Array(secret.utf8), body)) ? nil : .mismatch
    }

    /// Slack: `X-Slack-Signature: v0=HEX(HMAC-SHA256(secret, "v0:" + timestamp + ":" + body))`,
    /// `X-Slack-Request-Timestamp` within the window.
    public static func slack(body: [UInt8], timestamp: String?, signature: String?, secret: String, now: Date) -> SignatureFailure? {
        guard let timestamp else { return .missing("X-Slack-Request-Timestamp") }
        guard let signature else { return .missing("X-Slack-Signature") }
        guard let seconds = unixSeconds(timestamp) else { return .malformed("X-Slack-Request-Timestamp (expected 1-12 digits)") }
        guard signature.hasPrefix("v0="), let presented = hexBytes(signature.dropFirst(3)) else {
            return .malformed("X-Slack-Signature (expected v0=HEX)")
        }
        // The signature first: nothing the request claims (its time included) is read before.
        guard constantTimeEqual(presented, hmac(key: Array(secret.utf8), slackSignedBytes(body: body, timestamp: timestamp))) else {
            return .mismatch
        }
        return outsideWindow(seconds, now: now)
    }

    /// What Slack signs: `v0:TIMESTAMP:BODY`. Its hash is the replay key of every command.
    public static func slackSignedBytes(body: [UInt8], timestamp: String) -> [UInt8] {
        Array("v0:\(timestamp):".utf8) + body
    }

    /// Standard Webhooks: `webhook-signature: v1,BASE64(HMAC-SHA256(key, id + "." + timestamp +
    /// "." + body))`, space-separated for several keys; the secret is `whsec_BASE64KEY`.
    public static func standard(body: [UInt8], id: String?, timestamp: String?, signatures: String?,
                                secret: String, now: Date) -> SignatureFailure? {
        guard let id, !id.isEmpty else { return .missing("webhook-id") }
        guard let timestamp else { return .missing("webhook-timestamp") }
        guard let signatures else { return .missing("webhook-signature") }
        guard id.utf8.count <= 256 else { return .malformed("webhook-id (at most 256 bytes)") }
        guard let seconds = unixSeconds(timestamp) else { return .malformed("webhook-timestamp (expected 1-12 digits)") }
        guard let key = standardKey(secret) else { return .malformed("the configured whsec_ secret") }
        let expected = hmac(key: key, Array("\(id).\(timestamp).".utf8) + body)
        var matched = false
        for entry in signatures.split(separator: " ") {
            let parts = entry.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, parts[0] == "v1", let presented = Data(base64Encoded: String(parts[1])).map(Array.init) else { continue }
            if constantTimeEqual(presented, expected) { matched = true }
        }
        guard matched else { return .mismatch }
        return outsideWindow(seconds, now: now)
    }

    /// The header value for a body signed the Standard Webhooks way (outbound notifications).
    public static func standardHeader(body: [UInt8], id: String, timestamp: Int64, secret: String) -> String? {
        guard let key = standardKey(secret) else { return nil }
        return "v1," + base64Encode(hmac(key: key, Array("\(id).\(timestamp).".utf8) + body))
    }

    static func standardKey(_ secret: String) -> [UInt8]? { StandardWebhookSecret.key(secret) }

    /// A signed timestamp: 1-12 ASCII digits (no sign, no space), so no arithmetic on it can
    /// overflow; anything else is malformed.
    public static func unixSeconds(_ text: String) -> Int64? {
        let digits = text.utf8
        guard (1...12).contains(digits.count), digits.allSatisfy({ (48...57).contains($0) }) else { return nil }
        return Int64(text)
    }

    static func outsideWindow(_ seconds: Int64, now: Date) -> SignatureFailure? {
        let current = now.timeIntervalSince1970
        guard current.isFinite, abs(current) < 1e12 else { return .stale(seconds: 0) }
        let distance = Int64(current.rounded()) - seconds
        return abs(distance) > window ? .stale(seconds: distance) : nil
    }

    package static func hmac(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    /// Bytes as lower-case hex, the form `hexBytes` reads back.
    package static func hexString(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes { out.append(digits[Int(byte >> 4)]); out.append(digits[Int(byte & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    package static func hexBytes(_ text: Substring) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0, !digits.isEmpty else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }



    static func base64Encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}

/// Compares secrets in time that depends only on the presented length.
package func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var difference = UInt8(a.count == b.count ? 0 : 1)
    for index in 0..<a.count { difference |= a[index] ^ (index < b.count ? b[index] : 0) }
    return difference == 0
}
