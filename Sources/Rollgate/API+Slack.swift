import MicroHTTP
import Rollout
import SQLiteStore

/// `POST /api/v1/hooks/slack`: the `/deploy` slash command. Slack's v0 signature and a
/// 5-minute window are checked first; every answer after that is a 200 whose text Slack
/// shows (ephemeral to the user, or in the channel for what others should see).
extension API {
    func slack(_ request: HTTPRequest) throws -> HTTPResponse {
        guard let secret = config.webhooks.slack else { throw Refusal(status: 404, code: "not_configured", message: API.notConfigured) }
        try refuseWhileStopping()
        let signature = request.header("x-slack-signature")
        if let failure = WebhookSignature.slack(body: request.body, timestamp: request.header("x-slack-request-timestamp"),
                                                signature: signature, secret: secret, now: clock.now) {
            throw Refusal(status: 401, code: "invalid_signature", message: "\(failure)")
        }
        let form = FormBody.parse(request.body)
        let userID = form["user_id"] ?? "unknown"
        let userName = form["user_name"] ?? userID
        let who = "slack:\(userID) (\(userName))"
        let command: SlackCommand
        do {
            command = try SlackCommand(text: form["text"] ?? "")
        } catch let usage as SlackCommand.UsageError {
            return slackAnswer(usage.message)
        }
        do {
            switch command {
            case .help:
                return slackAnswer(SlackCommand.usage)
            case .status(let service):
                return slackAnswer(try slackStatus(service))
            case .deploy(let service, let version, let reason):
                try slackAllowed(userID, userName, service)
                // The signature is unique to this request: seeing it again is a replay.
                let key = "slack:\(signature ?? "")"
                if try store.run(idempotencyKey: key) != nil {
                    throw Refusal(status: 401, code: "replayed", message: "\(SignatureFailure.replayed)")
                }
                let (run, superseded) = try enqueueDeploy(service: service, version: version, reason: reason, requestedBy: who,
                                                          key: key, waitForLock: false)
                // Progress follows through Slack's response_url while it is valid.
                if let reply = form["response_url"],
                   reply.hasPrefix("https://") || reply.hasPrefix("http://127.0.0.1:") || reply.hasPrefix("http://localhost:") {
                    try store.setReplyTargets(of: run.id, replyURL: reply, githubDeployment: nil)
                }
                var text = "<@\(userID)> queued run \(run.id): deploy \(service) \(version)"
                if let reason { text += " (\(reason))" }
                if !superseded.isEmpty { text += "; it supersedes queued run \(superseded.map(String.init).joined(separator: ", "))" }
                text += ". \(link(request, run: run.id))"
                return slackAnswer(text, inChannel: true)
            case .cancel(let id):
                guard let run = try store.run(id) else { return slackAnswer("There is no run \(id).") }
                try slackAllowed(userID, userName, run.service)
                guard !run.status.isTerminal else { return slackAnswer("Run \(id) is already \(run.status.rawValue).") }
                _ = try store.requestCancel(id, at: clock.now)
                return slackAnswer("<@\(userID)> asked to cancel run \(id) (\(run.service) \(run.version)): "
                                   + (run.status == .queued ? "cancelled before it started." : "it stops once the target in hand is back in service."),
                                   inChannel: true)
            case .promote(let id):
                guard let run = try store.run(id) else { return slackAnswer("There is no run \(id).") }
                try slackAllowed(userID, userName, run.service)
                guard config.service(named: run.service)?.plan.canary != nil else { return slackAnswer("\(run.service) has no canary: there is no bake to end.") }
                guard try store.requestPromote(id) else { return slackAnswer("Run \(id) is \(run.status.rawValue): only a running run can be promoted.") }
                return slackAnswer("<@\(userID)> promoted run \(id) (\(run.service) \(run.version)): the bake ends and the rest of the targets follow.",
                                   inChannel: true)
            case .lock(let service, let reason):
                try knownService(service)
                try slackAllowed(userID, userName, service)
                _ = try store.lock(service: service, reason: reason, by: who, expiresAt: nil, at: clock.now)
                return slackAnswer("<@\(userID)> locked \(service): \(reason). Deploys are refused until `/deploy unlock \(service)`.", inChannel: true)
            case .unlock(let service):
                try knownService(service)
                try slackAllowed(userID, userName, service)
                guard try store.unlock(service: service, at: clock.now) != nil else { return slackAnswer("\(service) is not locked.") }
                wakeDispatcher()
                return slackAnswer("<@\(userID)> unlocked \(service).", inChannel: true)
            }
        } catch let refusal as Refusal where refusal.status != 401 && refusal.status != 503 {
            return slackAnswer(refusal.message)
        } catch let locked as Locked {
            let lock = locked.lock
            return slackAnswer("\(lock.service) is locked by \(lock.lockedBy): \(lock.reason)"
                               + (lock.expiresAt.map { " (until \(Timestamp.format($0)))" } ?? "") + ". Nothing was queued.")
        }
    }

    /// A service's `slack: {allow: [...]}` names who may act on it (user ids or names).
    func slackAllowed(_ userID: String, _ userName: String, _ service: String) throws {
        guard let allow = config.service(named: service)?.triggers.slackAllow, !allow.isEmpty else { return }
        guard allow.contains(userID) || allow.contains(userName) else {
            throw Refusal(status: 403, code: "not_allowed", message: "You may not deploy, cancel or lock \(service); ask one of: \(allow.joined(separator: ", ")).")
        }
    }

    func slackStatus(_ service: String?) throws -> String {
        let services = try service.map { name -> [ServiceConfig] in
            guard let one = config.service(named: name) else {
                throw Refusal(status: 404, code: "unknown_service", message: "No service \(name); there are \(config.services.map(\.name).joined(separator: ", ")).")
            }
            return [one]
        } ?? config.services
        return try services.map { service in
            let summary = try store.serviceSummary(service.name)
            var line = "*\(service.name)*: \(summary.lastGoodVersion.map { "last good \($0)" } ?? "no good version yet")"
            if let run = summary.running {
                line += "; rolling \(run.version) (run \(run.id)\(run.steps.last.map { ": \($0.targetID) \($0.phase.rawValue)" } ?? ""))"
            }
            if !summary.queued.isEmpty { line += "; queued \(summary.queued.map(String.init).joined(separator: ", "))" }
            if let lock = summary.lock, lock.holds(at: clock.now) { line += "; locked by \(lock.lockedBy): \(lock.reason)" }
            for left in summary.leftOut { line += "\n  :warning: \(left.target.id) is left out of the load balancer: \(left.reason)" }
            return line
        }.joined(separator: "\n")
    }

    func slackAnswer(_ text: String, inChannel: Bool = false) -> HTTPResponse {
        .json(200, JSONValue.object([("response_type", .string(inChannel ? "in_channel" : "ephemeral")), ("text", .string(text))]).bytes)
    }

    /// Where a person follows a run: `public_url` when configured, else this request's host.
    func link(_ request: HTTPRequest, run id: RunID) -> String {
        let base = config.publicURL ?? "http://\(request.header("host") ?? "\(config.listen)")"
        return "\(base)/api/v1/runs/\(id)"
    }
}
