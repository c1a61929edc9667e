import Configuration
import Integrations
import Monitoring
import WireFormat
import MicroHTTP
import Rollout

/// `POST /api/v1/hooks/slack`: the `/deploy` slash command. Slack's v0 signature and a
/// 5-minute window are checked first; every answer after that is a 200 whose text Slack
/// shows (ephemeral to the user, or in the channel for what others should see).
extension API {
    func slack(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard let secret = config.webhooks.slack else { throw Refusal(status: 404, code: "not_configured", message: API.notConfigured) }
        try refuseWhileStopping()
        let signature = request.header("x-slack-signature")
        let timestamp = request.header("x-slack-request-timestamp")
        if let failure = WebhookSignature.slack(body: request.body, timestamp: timestamp,
                                                signature: signature, secret: secret, now: clock.now) {
            if case .stale = failure {} else { authenticationFailed(request) }
            throw Refusal(status: 401, code: "invalid_signature", message: "\(failure)")
        }
        // Every command is judged by the bytes Slack signed (`v0:TIMESTAMP:BODY`), never by
        // how the signature is written: the same bytes again within the window are a replay.
        let key = "slack:\(API.contentKey(WebhookSignature.slackSignedBytes(body: request.body, timestamp: timestamp ?? "")))"
        let window = Double(WebhookSignature.window)
        guard try await requests.firstSight(of: key, until: clock.now.addingTimeInterval(2 * window), at: clock.now) else {
            throw Refusal(status: 401, code: "replayed", message: "\(SignatureFailure.replayed)")
        }
        let form = FormBody.parse(request.body)
        let userID = form["user_id"].map(VisibleText.flattened).map { String($0.prefix(32)) } ?? "unknown"
        let userName = form["user_name"].map(VisibleText.flattened).map { String($0.prefix(64)) } ?? userID
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
                return slackAnswer(try await slackStatus(service))
            case .deploy(let service, let version, let reason):
                try slackAllowed(userID, service)
                let (run, superseded, _) = try await enqueueDeploy(service: service, version: version, reason: reason, requestedBy: who,
                                                                key: key, waitForLock: false)
                // Progress follows through Slack's response_url while it is valid.
                // Only to Slack itself: a response_url elsewhere would make rollgate post wherever
                // a request says.
                if let reply = form["response_url"], SlackResponseURL.isAllowed(reply, loopbackForTests: config.loopbackResponseURLs) {
                    try await requests.setReplyTargets(of: run.id, replyURL: reply, githubDeployment: nil)
                }
                var text = "<@\(userID)> queued run \(run.id): deploy \(service) \(version)"
                if let reason { text += " (\(reason))" }
                if !superseded.isEmpty { text += "; it supersedes queued run \(superseded.map(String.init).joined(separator: ", "))" }
                text += ". \(link(request, run: run.id))"
                return slackAnswer(text, inChannel: true)
            case .cancel(let id):
                guard let run = try await read({ try $0.run(id) }) else { return slackAnswer("There is no run \(id).") }
                try slackAllowed(userID, run.service)
                guard !run.status.isTerminal else { return slackAnswer("Run \(id) is already \(run.status.rawValue).") }
                _ = try await requests.requestCancel(id, at: clock.now)
                return slackAnswer("<@\(userID)> asked to cancel run \(id) (\(run.service) \(run.version)): "
                                   + (run.status == .queued ? "cancelled before it started." : "it stops once the target in hand is back in service."),
                                   inChannel: true)
            case .promote(let id):
                guard let run = try await read({ try $0.run(id) }) else { return slackAnswer("There is no run \(id).") }
                try slackAllowed(userID, run.service)
                guard config.service(named: run.service)?.plan.canary != nil else { return slackAnswer("\(run.service) has no canary: there is no bake to end.") }
                guard try await requests.requestPromote(id) else { return slackAnswer("Run \(id) is \(run.status.rawValue): only a running run can be promoted.") }
                return slackAnswer("<@\(userID)> promoted run \(id) (\(run.service) \(run.version)): the bake ends and the rest of the targets follow.",
                                   inChannel: true)
            case .lock(let service, let reason):
                try knownService(service)
                try slackAdmin(userID, "lock")
                _ = try await requests.lock(service: service, reason: reason, by: who, expiresAt: nil, at: clock.now)
                return slackAnswer("<@\(userID)> locked \(service): \(reason). Deploys are refused until `/deploy unlock \(service)`.", inChannel: true)
            case .unlock(let service):
                try knownService(service)
                try slackAdmin(userID, "unlock")
                guard try await requests.unlock(service: service, at: clock.now) != nil else { return slackAnswer("\(service) is not locked.") }
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

    /// A service's `slack: {allow: [...]}` names who may act on it, by user id only (a display
    /// name is the user's to change).
    func slackAllowed(_ userID: String, _ service: String) throws {
        guard let allow = config.service(named: service)?.triggers.slackAllow, !allow.isEmpty else { return }
        guard allow.contains(userID) else {
            throw Refusal(status: 403, code: "not_allowed",
                          message: "You may not deploy, cancel or promote \(service); ask one of: \(allow.map { "<@\($0)>" }.joined(separator: ", ")).")
        }
    }

    /// Locks and unlocks from Slack need `slack: {admins: [...]}` to name the user (by id):
    /// with no list, nobody in the workspace may lift a freeze an admin set.
    func slackAdmin(_ userID: String, _ action: String) throws {
        guard config.slackAdmins.contains(userID) else {
            throw Refusal(status: 403, code: "not_allowed",
                          message: config.slackAdmins.isEmpty
                            ? "Nobody may \(action) from Slack on this server: it lists no slack: {admins: [...]}. Use the API with an admin token."
                            : "Only \(config.slackAdmins.map { "<@\($0)>" }.joined(separator: ", ")) may \(action) from Slack.")
        }
    }

    func slackStatus(_ service: String?) async throws -> String {
        let services = try service.map { name -> [ServiceConfig] in
            guard let one = config.service(named: name) else {
                throw Refusal(status: 404, code: "unknown_service", message: "No service \(name); there are \(config.services.map(\.name).joined(separator: ", ")).")
            }
            return [one]
        } ?? config.services
        let names = services.map(\.name)
        let summaries = try await read { history in try names.map { try history.serviceSummary($0) } }
        return zip(services, summaries).map { service, summary in
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
