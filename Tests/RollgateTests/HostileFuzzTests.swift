@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
import HTTPTesting
@testable import RollgateServer
import Rollout
import RolloutTesting

/// A seeded fuzz over every door of the real binary: API writes and reads, the four webhooks
/// (signed right, signed wrong, unsigned), the Slack form, headers and query strings, with
/// absurd numbers, lengths, encodings and control characters. The server never dies, never
/// answers 5xx, and every refusal is a JSON error. `ROLLGATE_FUZZ_REQUESTS` (default 2000)
/// and `ROLLGATE_FUZZ_SEED` set how far and where it goes; a failure names its seed.
@Suite(.serialized) struct HostileFuzzTests {
    let directory = TempDirectory()

    static let absurdNumbers = ["-9223372036854775808", "9223372036854775807", "18446744073709551616", "99999999999999999999999",
                                "1e400", "-1e400", "NaN", "Infinity", "-0", "0x7fffffff", "1.5", "00000000000000000001", "", " ", "+1", "١٢٣"]
    static let nasty = ["\u{0}", "\r\n", "\n", "\u{1B}[2J", "\u{202E}", "\u{2066}", "%00", "%0d%0a", "../../etc/passwd", "/", "//", "..",
                        "<script>alert(1)</script>", "\"", "\\", "'", "`rm -rf /`", "$(id)", "\u{FEFF}", "\u{FFFD}", "e\u{301}", "😀",
                        "%ZZ", "%", "+", "&", "=", ";", String(repeating: "A", count: 5000), String(repeating: "é", count: 3000)]

    struct Fuzzer {
        var random: SeededRandom
        let now: Int64

        mutating func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
        mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }

        mutating func text() -> String {
            switch random.next() % 6 {
            case 0: return pick(HostileFuzzTests.absurdNumbers)
            case 1: return pick(HostileFuzzTests.nasty)
            case 2: return pick(["web", "v1", "main", "U1", "acme/web"]) + pick(HostileFuzzTests.nasty)
            case 3: return String(repeating: pick(["a", "/", ".", "\u{0}", "\u{7F}"]), count: Int(random.next() % 300))
            case 4: return pick(["web", "v42", "release/1.2", "deploy"])
            default: return String(decoding: (0..<Int(random.next() % 40)).map { _ in UInt8(truncatingIfNeeded: random.next()) }, as: UTF8.self)
            }
        }

        mutating func value(depth: Int = 0) -> JSONValue {
            switch random.next() % (depth > 3 ? 4 : 6) {
            case 0: return .string(text())
            case 1: return .number(pick([0, -1, 1e300, -1e300, 9.3e18, -9.3e18, 0.5, 4_294_967_296, 1e-300]))
            case 2: return .bool(chance(50))
            case 3: return .null
            case 4: return .array((0..<Int(random.next() % 4)).map { _ in value(depth: depth + 1) })
            default: return .object((0..<Int(random.next() % 4)).map { _ in (pick(["service", "version", "reason", "ref", "a"]), value(depth: depth + 1)) })
            }
        }

        /// A JSON object with the door's keys, each holding something hostile now and then.
        mutating func body(_ keys: [String]) -> [UInt8] {
            switch random.next() % 8 {
            case 0: return (0..<Int(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 1: return Array(String(repeating: "[", count: 5000).utf8)
            case 2: return Array(#"{"service":"web","service":"api","version":"v1"}"#.utf8)
            default:
                var fields: [(String, JSONValue)] = []
                for key in keys where chance(80) { fields.append((key, chance(50) ? .string(text()) : value())) }
                if chance(20) { fields.append((text(), value())) }
                return JSONValue.object(fields).bytes
            }
        }
    }

    @Test func noDoorCrashesTheServerOrAnswers5xx() async throws {
        let environment = ProcessInfo.processInfo.environment
        let count = Int(environment["ROLLGATE_FUZZ_REQUESTS"] ?? "") ?? 2000
        let seed = UInt64(environment["ROLLGATE_FUZZ_SEED"] ?? "") ?? 0x5EED_0016
        let doors = try await OpenDoors(directory)
        defer { doors.stop() }
        var fuzz = Fuzzer(random: SeededRandom(seed: seed), now: doors.now)
        var statuses: [Int: Int] = [:]
        for index in 0..<count {
            var client = doors.client
            client.source = "127.0.\(1 + index % 200).\(2 + (index / 200) % 200)"   // failures spread over many addresses
            let (method, path, headers, body) = request(&fuzz, doors: doors)
            let response: HTTPResponse
            do {
                response = try await client.request(method, path, headers: headers, body: body)
            } catch {
                // A connection the server closed (a request it could not frame) is an answer too,
                // as long as the server lives.
                #expect(try await doors.healthy(), "seed \(seed), request \(index): \(method) \(path.prefix(80)) left the server down: \(error)")
                continue
            }
            statuses[response.status, default: 0] += 1
            #expect(response.status < 500, "seed \(seed), request \(index): \(method) \(path.prefix(80)) answered \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
            if method != "HEAD", response.status >= 400, response.header("content-type")?.hasPrefix("application/json") == true {
                #expect(json(response)["error"]?["code"]?.string != nil, "seed \(seed), request \(index): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
            }
        }
        #expect(try await doors.healthy(), "seed \(seed): the server is down after \(count) requests")
        #expect(statuses.keys.contains { (200..<300).contains($0) } && statuses.keys.contains { (400..<500).contains($0) },
                "the fuzz reached both refusals and accepted requests: \(statuses)")
    }

    func request(_ fuzz: inout Fuzzer, doors: OpenDoors) -> (String, String, [(String, String)], [UInt8]) {
        let auth = fuzz.chance(70) ? [doors.auth] : [("Authorization", fuzz.pick(["Bearer " + fuzz.text(), "Basic x", "bearer", fuzz.text()]))]
        let query = fuzz.chance(40) ? "?" + fuzz.pick(["limit", "cursor", "after", "status", "service", "part", "x"]) + "=" + fuzz.text().addingPercentEncoding(withAllowedCharacters: .alphanumerics)! : ""
        let id = fuzz.chance(50) ? "1" : fuzz.text().addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        var headers: [(String, String)] = []
        if fuzz.chance(15) { headers.append((fuzz.pick(["Idempotency-Key", "Last-Event-ID", "Accept", "Cookie", "X-GitHub-Event", "Content-Type"]), fuzz.text())) }
        switch fuzz.random.next() % 12 {
        case 0:
            return ("POST", "/api/v1/deploys" + query, auth + headers, fuzz.body(["service", "version", "reason", "wait_for_lock", "requested_by"]))
        case 1:
            return (fuzz.pick(["GET", "HEAD"]), fuzz.pick(["/api/v1/runs", "/api/v1/runs/\(id)", "/api/v1/runs/\(id)/logs", "/api/v1/services",
                                                           "/api/v1/runs/\(id)/deliveries", "/runs/\(id)", "/status.txt", "/metrics", "/"]) + query,
                    auth + headers, [])
        case 2:
            return ("POST", fuzz.pick(["/api/v1/runs/\(id)/cancel", "/api/v1/runs/\(id)/promote", "/api/v1/services/web/rollback",
                                       "/api/v1/services/\(id)/lock", "/api/v1/services/web/targets/\(id)/restore",
                                       "/api/v1/services/web/targets/\(id)/forget"]), auth + headers, fuzz.body(["reason", "expires_in", "wait_for_lock"]))
        case 3:
            return ("DELETE", "/api/v1/services/" + fuzz.pick(["web", id]) + "/lock", auth + headers, [])
        case 4, 5:
            // GitHub, signed right (its parser and intents see the hostile payload) or wrong.
            let body = fuzz.chance(30) ? Array(doors.push(message: fuzz.text(), pushedAt: fuzz.chance(50) ? nil : Int64(fuzz.random.next() % 4_000_000_000)).utf8)
                                       : fuzz.body(["ref", "after", "repository", "deployment", "head_commit", "sender", "deleted"])
            let signature = fuzz.chance(80) ? "sha256=" + OpenDoors.hex(WebhookSignature.hmac(key: Array(OpenDoors.githubSecret.utf8), body)) : fuzz.text()
            return ("POST", "/api/v1/hooks/github", headers + [("X-GitHub-Event", fuzz.pick(["push", "deployment", "ping", fuzz.text()])),
                                                               ("X-Hub-Signature-256", signature)], body)
        case 6:
            let token = fuzz.chance(80) ? OpenDoors.gitlabToken : fuzz.text()
            return ("POST", "/api/v1/hooks/gitlab", headers + [("X-Gitlab-Token", token)],
                    fuzz.body(["object_kind", "ref", "checkout_sha", "project", "commits", "user_username"]))
        case 7, 8:
            let body = fuzz.body(["service", "version", "reason", "requested_by"])
            let id = fuzz.chance(80) ? "msg_\(fuzz.random.next())" : fuzz.text()
            let timestamp = fuzz.chance(70) ? "\(fuzz.now)" : fuzz.pick(HostileFuzzTests.absurdNumbers)
            let key = WebhookSignature.standardKey(OpenDoors.genericSecret)!
            let signature = fuzz.chance(80) ? "v1," + WebhookSignature.base64Encode(WebhookSignature.hmac(key: key, Array("\(id).\(timestamp).".utf8) + body))
                                            : fuzz.text()
            return ("POST", "/api/v1/hooks/generic", headers + [("webhook-id", id), ("webhook-timestamp", timestamp), ("webhook-signature", signature)], body)
        case 9, 10:
            // Slack's form, signed right over hostile fields, or with a hostile timestamp.
            var fields: [String] = []
            for key in ["user_id", "user_name", "text", "response_url", "team_id"] where fuzz.chance(80) {
                let value = key == "text" && fuzz.chance(50) ? fuzz.pick(["web ", "cancel ", "lock web ", "unlock ", "status ", "promote "]) + fuzz.text() : fuzz.text()
                fields.append(key + "=" + (fuzz.chance(80) ? value.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! : value))
            }
            let body = Array(fields.joined(separator: "&").utf8)
            let timestamp = fuzz.chance(70) ? "\(fuzz.now)" : fuzz.pick(HostileFuzzTests.absurdNumbers)
            let signature = fuzz.chance(80) ? "v0=" + OpenDoors.hex(WebhookSignature.hmac(key: Array(OpenDoors.slackSecret.utf8), Array("v0:\(timestamp):".utf8) + body))
                                            : fuzz.text()
            return ("POST", "/api/v1/hooks/slack", headers + [("X-Slack-Request-Timestamp", timestamp), ("X-Slack-Signature", signature)], body)
        default:
            return ("POST", "/login", headers, Array(("token=" + fuzz.text()).utf8))
        }
    }
}
