import Configuration
import WireFormat
import Rollout

/// `/deploy ...` as typed in Slack: the text after the command, as words.
package enum SlackCommand: Equatable {
    case help
    case status(service: String?)
    case deploy(service: String, version: String, reason: String?)
    case cancel(RunID)
    case promote(RunID)
    case lock(service: String, reason: String)
    case unlock(service: String)

    package static let usage = """
        `/deploy SERVICE VERSION [reason]` deploy a version
        `/deploy status [SERVICE]` what is running, locked or left out
        `/deploy cancel RUN` stop a run once the target in hand is back
        `/deploy promote RUN` end a canary's bake now
        `/deploy lock SERVICE REASON` refuse deploys until unlocked
        `/deploy unlock SERVICE`
        `/deploy help` this text
        """

    package struct UsageError: Error { package let message: String }

    package init(text: String) throws {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
        let rest = { (from: Int) -> String? in
            words.count > from ? words[from...].joined(separator: " ") : nil
        }
        switch words.first?.lowercased() {
        case nil, "help":
            self = .help
        case "status":
            guard words.count <= 2 else { throw UsageError(message: "usage: `/deploy status [SERVICE]`") }
            self = .status(service: words.count == 2 ? words[1] : nil)
        case "cancel":
            guard words.count == 2, let id = RunID(words[1]), id > 0 else { throw UsageError(message: "usage: `/deploy cancel RUN` with the run's number") }
            self = .cancel(id)
        case "promote":
            guard words.count == 2, let id = RunID(words[1]), id > 0 else { throw UsageError(message: "usage: `/deploy promote RUN` with the run's number") }
            self = .promote(id)
        case "lock":
            guard words.count >= 3, let reason = rest(2) else { throw UsageError(message: "usage: `/deploy lock SERVICE REASON` (a reason is required)") }
            self = .lock(service: words[1], reason: reason)
        case "unlock":
            guard words.count == 2 else { throw UsageError(message: "usage: `/deploy unlock SERVICE`") }
            self = .unlock(service: words[1])
        default:
            guard words.count >= 2 else { throw UsageError(message: "usage: `/deploy SERVICE VERSION [reason]`; `/deploy help` lists every command") }
            self = .deploy(service: words[0], version: words[1], reason: rest(2))
        }
    }
}

/// An `application/x-www-form-urlencoded` body: `+` is a space, `%XX` a byte.
package enum FormBody {
    package static func parse(_ body: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: UInt8(ascii: "&")) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = decode(parts[0]) else { continue }
            fields[key] = parts.count > 1 ? decode(parts[1]) ?? "" : ""
        }
        return fields
    }

    static func decode(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%") {
                guard bytes.distance(from: index, to: bytes.endIndex) >= 3,
                      let value = WebhookSignature.hexBytes(Substring(String(decoding: bytes[(index + 1)...(index + 2)], as: UTF8.self))) else { return nil }
                out.append(contentsOf: value)
                index += 2
            } else {
                out.append(byte)
            }
            index += 1
        }
        return String(validating: out, as: UTF8.self)
    }
}

/// Where Slack's `response_url` may point: `https://hooks.slack.com/...` and nowhere else
/// (scheme and host exactly, no user-info, no port, nothing a URL parser could read another
/// way). With the test-only switch, also `http://127.0.0.1:PORT/...` for a sink in tests.
package enum SlackResponseURL {
    package static func isAllowed(_ url: String, loopbackForTests: Bool) -> Bool {
        guard url.utf8.count <= 2048,
              !url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "\\") || $0 >= 0x80 }) else { return false }
        if url.hasPrefix("https://hooks.slack.com/") { return true }
        guard loopbackForTests, url.hasPrefix("http://127.0.0.1:") else { return false }
        let rest = url.dropFirst("http://127.0.0.1:".count)
        guard let slash = rest.firstIndex(of: "/") else { return false }
        let port = rest[..<slash]
        return (1...5).contains(port.count) && port.allSatisfy(\.isNumber)
    }
}
