import Configuration
import WireFormat
import Rollout

/// What an incoming webhook or chat command asks rollgate to do.
package enum WebhookIntent: Equatable {
    /// Deploy `version` of `service`; `requestedBy` says who, in a form a person reads.
    /// `githubDeployment`: `OWNER/REPO/ID` of the GitHub deployment that asked, for its statuses.
    case deploy(service: String, version: String, requestedBy: String, reason: String?, githubDeployment: String? = nil)
    /// Acknowledged (2xx) and nothing queued, with the reason in the answer.
    case ignore(String)
}

/// GitHub's events: `push` to a mapped repository and branch deploys the head commit;
/// `deployment` (the Deployments API) deploys the given SHA to the service mapped to that
/// repository and environment, if its ref is the service's branch; anything else is
/// acknowledged and ignored. A push or deployment older than `maxAge` seconds (by the signed
/// `repository.pushed_at` or `deployment.created_at`) is acknowledged and ignored too: a
/// delivery someone kept cannot roll production back later.
package enum GitHubEvent {
    package static func intents(event: String, payload: JSONValue, services: [ServiceConfig], now: Int64, maxAge: Int64) -> [WebhookIntent] {
        let repository = text(payload["repository"]?["full_name"]?.string ?? "", 200)
        let sender = text(payload["sender"]?["login"]?.string ?? "unknown", 100)
        switch event {
        case "push":
            guard let ref = payload["ref"]?.string, ref.hasPrefix("refs/heads/") else {
                return [.ignore("a push to \(text(payload["ref"]?.string ?? "no ref", 200)), not to a branch")]
            }
            if let stale = tooOld(payload["repository"]?["pushed_at"], "pushed_at", now: now, maxAge: maxAge) { return [.ignore(stale)] }
            let branch = String(ref.dropFirst("refs/heads/".count))
            let sha = payload["head_commit"]?["id"]?.string ?? payload["after"]?.string ?? ""
            if payload["deleted"] == .bool(true) || sha.isEmpty || sha.allSatisfy({ $0 == "0" }) {
                return [.ignore("branch \(branch) of \(repository) was deleted: nothing to deploy")]
            }
            let mapped = services.filter { service in
                guard let github = service.triggers.github else { return false }
                return github.repository.lowercased() == repository.lowercased() && github.branch == branch
            }
            guard !mapped.isEmpty else {
                return [.ignore("no service deploys \(repository) branch \(branch)")]
            }
            let message = payload["head_commit"]?["message"]?.string.map(firstLine)
            return mapped.map {
                .deploy(service: $0.name, version: sha, requestedBy: "github:\(sender) (push \(repository)@\(sha.prefix(7)))",
                        reason: message)
            }
        case "deployment":
            guard let deployment = payload["deployment"], let sha = deployment["sha"]?.string else {
                return [.ignore("a deployment event without a deployment")]
            }
            if let stale = tooOld(deployment["created_at"], "created_at", now: now, maxAge: maxAge) { return [.ignore(stale)] }
            let environment = text(deployment["environment"]?.string ?? "", 100)
            let creator = text(deployment["creator"]?["login"]?.string ?? sender, 100)
            let ref = deployment["ref"]?.string ?? ""
            let inEnvironment = services.filter { service in
                guard let github = service.triggers.github else { return false }
                return github.repository.lowercased() == repository.lowercased() && (github.environment ?? service.name) == environment
            }
            guard !inEnvironment.isEmpty else {
                return [.ignore("no service deploys \(repository) to environment \(environment)")]
            }
            // Anyone who may create a deployment may name any ref: only the branch the service
            // deploys from is deployed (protect the environment in GitHub too).
            let mapped = inEnvironment.filter { service in
                guard let branch = service.triggers.github?.branch else { return false }
                return ref == branch || ref == "refs/heads/\(branch)"
            }
            guard !mapped.isEmpty else {
                return inEnvironment.map { service in
                    .ignore("deployment ref \(text(ref, 200)) is not branch \(service.triggers.github?.branch ?? "") that \(service.name) deploys from: nothing deployed")
                }
            }
            let id = deployment["id"]?.int.map(String.init) ?? "?"
            return mapped.map {
                .deploy(service: $0.name, version: sha,
                        requestedBy: "github:\(creator) (deployment \(id) of \(repository)@\(sha.prefix(7)) to \(environment))",
                        reason: deployment["description"]?.string.map(firstLine), githubDeployment: "\(repository)/\(id)")
            }
        default:
            return [.ignore("\(text(event, 64)) events do not deploy")]
        }
    }

    /// Why a signed time is too far from now (or missing), or nil when it is fresh.
    static func tooOld(_ value: JSONValue?, _ name: String, now: Int64, maxAge: Int64) -> String? {
        guard let seconds = GitHubTime.seconds(value) else {
            return "the event carries no \(name) to judge its age by: ignored"
        }
        let age = now - seconds
        guard abs(age) <= maxAge else {
            return age > 0 ? "\(name) is \(age) s ago, older than max_age (\(maxAge) s): an old delivery is never deployed"
                           : "\(name) is \(-age) s in the future: ignored"
        }
        return nil
    }
}

/// Text from a webhook as records keep it: control and bidirectional characters as spaces
/// (a commit message with CRLF or a tab still deploys), at most `limit` characters.
func text(_ value: String, _ limit: Int) -> String {
    String(VisibleText.flattened(value).prefix(limit))
}

/// GitHub's times: Unix seconds (a push's `repository.pushed_at`) or RFC 3339 text
/// (`2026-12-05T21:00:00Z`, `...+01:00`, with or without a fraction).
enum GitHubTime {
    static func seconds(_ value: JSONValue?) -> Int64? {
        switch value {
        case .number?: return value?.int.flatMap { abs($0) < 100_000_000_000 ? $0 : nil }
        case .string(let text)?: return parse(text)
        default: return nil
        }
    }

    static func parse(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        guard b.count >= 20, b.count <= 40, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":") else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range { guard (48...57).contains(b[index]) else { return nil }; value = value * 10 + Int64(b[index] - 48) }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
              let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var at = 19
        if at < b.count, b[at] == UInt8(ascii: ".") {
            at += 1
            while at < b.count, (48...57).contains(b[at]) { at += 1 }
        }
        var offset: Int64 = 0
        if at < b.count, b[at] == UInt8(ascii: "Z") {
            at += 1
        } else if at + 6 == b.count, b[at] == UInt8(ascii: "+") || b[at] == UInt8(ascii: "-"), b[at + 3] == UInt8(ascii: ":"),
                  let hours = number((at + 1)..<(at + 3)), let minutes = number((at + 4)..<(at + 6)) {
            offset = (hours * 3600 + minutes * 60) * (b[at] == UInt8(ascii: "+") ? 1 : -1)
            at += 6
        } else {
            return nil
        }
        guard at == b.count else { return nil }
        // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return days * 86_400 + hour * 3600 + minute * 60 + second - offset
    }
}

/// GitLab's push hook, mapped like GitHub's (`gitlab: {project, branch}`).
package enum GitLabEvent {
    package static func intents(payload: JSONValue, services: [ServiceConfig]) -> [WebhookIntent] {
        guard payload["object_kind"]?.string == "push" else {
            return [.ignore("\(payload["object_kind"]?.string ?? "unknown") events do not deploy")]
        }
        guard let ref = payload["ref"]?.string, ref.hasPrefix("refs/heads/") else { return [.ignore("a push not to a branch")] }
        let branch = String(ref.dropFirst("refs/heads/".count))
        let project = text(payload["project"]?["path_with_namespace"]?.string ?? "", 200)
        let sha = payload["checkout_sha"]?.string ?? payload["after"]?.string ?? ""
        if sha.isEmpty || sha.allSatisfy({ $0 == "0" }) {
            return [.ignore("branch \(branch) of \(project) was deleted: nothing to deploy")]
        }
        let mapped = services.filter { service in
            guard let gitlab = service.triggers.gitlab else { return false }
            return gitlab.repository.lowercased() == project.lowercased() && gitlab.branch == branch
        }
        guard !mapped.isEmpty else { return [.ignore("no service deploys \(project) branch \(branch)")] }
        let user = text(payload["user_username"]?.string ?? payload["user_name"]?.string ?? "unknown", 100)
        let message = (payload["commits"]?.array?.last?["message"]?.string).map(firstLine)
        return mapped.map {
            .deploy(service: $0.name, version: sha, requestedBy: "gitlab:\(user) (push \(project)@\(sha.prefix(7)))", reason: message)
        }
    }
}

/// The first line of a commit message, at most 200 characters, with any other control
/// character (a CR, a tab) as a space: such a message still deploys.
func firstLine(_ message: String) -> String {
    // By scalar: "\r\n" is one Character, which equals no "\n".
    let scalars = message.unicodeScalars
    let end = scalars.firstIndex { $0 == "\n" || $0 == "\r" } ?? scalars.endIndex
    return text(String(scalars[..<end]), 200).trimmedTrailingSpaces
}

extension String {
    var trimmedTrailingSpaces: String { String(reversed().drop { $0 == " " }.reversed()) }
}
