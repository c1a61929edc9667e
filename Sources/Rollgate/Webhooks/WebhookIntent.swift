import Rollout

/// What an incoming webhook or chat command asks rollgate to do.
enum WebhookIntent: Equatable {
    /// Deploy `version` of `service`; `requestedBy` says who, in a form a person reads.
    /// `githubDeployment`: `OWNER/REPO/ID` of the GitHub deployment that asked, for its statuses.
    case deploy(service: String, version: String, requestedBy: String, reason: String?, githubDeployment: String? = nil)
    /// Acknowledged (2xx) and nothing queued, with the reason in the answer.
    case ignore(String)
}

/// GitHub's events: `push` to a mapped repository and branch deploys the head commit;
/// `deployment` (the Deployments API) deploys the given SHA to the service mapped to that
/// repository and environment; anything else is acknowledged and ignored.
enum GitHubEvent {
    static func intents(event: String, payload: JSONValue, services: [ServiceConfig]) -> [WebhookIntent] {
        let repository = payload["repository"]?["full_name"]?.string ?? ""
        let sender = payload["sender"]?["login"]?.string ?? "unknown"
        switch event {
        case "push":
            guard let ref = payload["ref"]?.string, ref.hasPrefix("refs/heads/") else {
                return [.ignore("a push to \(payload["ref"]?.string ?? "no ref"), not to a branch")]
            }
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
            let environment = deployment["environment"]?.string ?? ""
            let creator = deployment["creator"]?["login"]?.string ?? sender
            let mapped = services.filter { service in
                guard let github = service.triggers.github else { return false }
                return github.repository.lowercased() == repository.lowercased() && (github.environment ?? service.name) == environment
            }
            guard !mapped.isEmpty else {
                return [.ignore("no service deploys \(repository) to environment \(environment)")]
            }
            let id = deployment["id"]?.int.map(String.init) ?? "?"
            return mapped.map {
                .deploy(service: $0.name, version: sha,
                        requestedBy: "github:\(creator) (deployment \(id) of \(repository)@\(sha.prefix(7)) to \(environment))",
                        reason: deployment["description"]?.string.map(firstLine), githubDeployment: "\(repository)/\(id)")
            }
        default:
            return [.ignore("\(event) events do not deploy")]
        }
    }
}

/// GitLab's push hook, mapped like GitHub's (`gitlab: {project, branch}`).
enum GitLabEvent {
    static func intents(payload: JSONValue, services: [ServiceConfig]) -> [WebhookIntent] {
        guard payload["object_kind"]?.string == "push" else {
            return [.ignore("\(payload["object_kind"]?.string ?? "unknown") events do not deploy")]
        }
        guard let ref = payload["ref"]?.string, ref.hasPrefix("refs/heads/") else { return [.ignore("a push not to a branch")] }
        let branch = String(ref.dropFirst("refs/heads/".count))
        let project = payload["project"]?["path_with_namespace"]?.string ?? ""
        let sha = payload["checkout_sha"]?.string ?? payload["after"]?.string ?? ""
        if sha.isEmpty || sha.allSatisfy({ $0 == "0" }) {
            return [.ignore("branch \(branch) of \(project) was deleted: nothing to deploy")]
        }
        let mapped = services.filter { service in
            guard let gitlab = service.triggers.gitlab else { return false }
            return gitlab.repository.lowercased() == project.lowercased() && gitlab.branch == branch
        }
        guard !mapped.isEmpty else { return [.ignore("no service deploys \(project) branch \(branch)")] }
        let user = payload["user_username"]?.string ?? payload["user_name"]?.string ?? "unknown"
        let message = (payload["commits"]?.array?.last?["message"]?.string).map(firstLine)
        return mapped.map {
            .deploy(service: $0.name, version: sha, requestedBy: "gitlab:\(user) (push \(project)@\(sha.prefix(7)))", reason: message)
        }
    }
}

/// The first line of a commit message, at most 200 characters.
func firstLine(_ text: String) -> String {
    String(text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "").prefix(200).description
}
