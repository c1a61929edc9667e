#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A Slack user id: `U` or `W` and 2-20 upper-case letters or digits (`U0123ABCD`).
package enum SlackUserID {
    package static func isValid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (2...21).contains(bytes.count), bytes[0] == UInt8(ascii: "U") || bytes[0] == UInt8(ascii: "W") else { return false }
        return bytes.dropFirst().allSatisfy { (48...57).contains($0) || (65...90).contains($0) }
    }
}

/// A Standard Webhooks secret: `whsec_` and the key in base64 (the prefix may be left off).
package enum StandardWebhookSecret {
    /// The key's bytes, or nil when the secret is not one.
    package static func key(_ secret: String) -> [UInt8]? {
        let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
        guard let data = Data(base64Encoded: encoded), !data.isEmpty else { return nil }
        return Array(data)
    }
}
