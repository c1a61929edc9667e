import Configuration
import Integrations
import WireFormat
import Crypto
import MicroHTTP
import Rollout

/// Deploys from outside: GitHub, GitLab, any CI through a Standard Webhooks signature, and
/// Slack's slash command. An endpoint without its configured secret answers 404 (never
/// open); a bad, stale or replayed signature 401 with nothing queued.
extension API {
    static let notConfigured = "this webhook is not configured on this server (its secret is not set)"

    /// `POST /api/v1/hooks/github`.
    func github(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard let secret = config.webhooks.github else { throw Refusal(status: 404, code: "not_configured", message: API.notConfigured) }
        try refuseWhileStopping()
        if let failure = WebhookSignature.github(body: request.body, header: request.header("x-hub-signature-256"), secret: secret) {
            authenticationFailed(request)
            throw Refusal(status: 401, code: "invalid_signature", message: "X-Hub-Signature-256: \(failure)")
        }
        guard let event = request.header("x-github-event"), !event.isEmpty, event.utf8.count <= 64 else {
            throw Refusal(status: 400, code: "missing_header", message: "X-GitHub-Event is required (at most 64 bytes)")
        }
        let payload = try object(request)
        if event == "ping" {
            return .json(200, JSONValue.object([("pong", .string(String(VisibleText.flattened(payload["zen"]?.string ?? "pong").prefix(200))))]).bytes)
        }
        // Replays are judged by what GitHub signed, not by X-GitHub-Delivery (which is not
        // signed): the same body finds the run it queued, whatever delivery id it comes with.
        // Old bodies stop counting at max_age (from the signed pushed_at / created_at).
        let intents = GitHubEvent.intents(event: event, payload: payload, services: config.services,
                                          now: unixNow, maxAge: Int64(config.githubMaxAge.components.seconds))
        return try await queue(intents, delivery: "github:\(API.contentKey(request.body))", replayIsRefused: false)
    }

    /// A request's identity by content: SHA-256 of its bytes, in hex.
    static func contentKey(_ bytes: [UInt8]) -> String {
        WebhookSignature.hexString(SHA256.hash(data: bytes))
    }

    /// `POST /api/v1/hooks/gitlab`: `X-Gitlab-Token` compared in constant time.
    func gitlab(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard let token = config.webhooks.gitlab else { throw Refusal(status: 404, code: "not_configured", message: API.notConfigured) }
        try refuseWhileStopping()
        guard let presented = request.header("x-gitlab-token") else {
            throw Refusal(status: 401, code: "invalid_signature", message: "the X-Gitlab-Token header is missing")
        }
        guard constantTimeEqual(Array(presented.utf8), Array(token.utf8)) else {
            authenticationFailed(request)
            throw Refusal(status: 401, code: "invalid_signature", message: "X-Gitlab-Token does not match")
        }
        let payload = try object(request)
        // GitLab signs nothing (its token is a shared password): the same body, with or
        // without X-Gitlab-Event-UUID, finds the run it queued.
        return try await queue(GitLabEvent.intents(payload: payload, services: config.services),
                         delivery: "gitlab:\(API.contentKey(request.body))", replayIsRefused: false)
    }

    /// `POST /api/v1/hooks/generic`: Standard Webhooks, `{"service","version","reason"?,"requested_by"?}`.
    func generic(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard let secret = config.webhooks.generic else { throw Refusal(status: 404, code: "not_configured", message: API.notConfigured) }
        try refuseWhileStopping()
        let id = request.header("webhook-id")
        if let failure = WebhookSignature.standard(body: request.body, id: id, timestamp: request.header("webhook-timestamp"),
                                                   signatures: request.header("webhook-signature"), secret: secret, now: clock.now) {
            if case .stale = failure {} else { authenticationFailed(request) }
            throw Refusal(status: 401, code: "invalid_signature", message: "\(failure)")
        }
        let body = try strictObject(request.body, allowed: ["service", "version", "reason", "requested_by"])
        let service = try field(body, "service", required: true)!
        let version = try field(body, "version", required: true)!
        let who = try field(body, "requested_by", required: false) ?? "ci"
        guard (1...100).contains(who.utf8.count) else {
            throw Refusal(status: 422, code: "invalid_field", message: "requested_by must be 1-100 bytes")
        }
        let intent = WebhookIntent.deploy(service: service, version: version, requestedBy: "webhook:\(who) (\(id ?? ""))",
                                          reason: try field(body, "reason", required: false))
        return try await queue([intent], delivery: id.map { "webhook:\($0)" }, replayIsRefused: true)
    }

    /// Queues each deploy; a delivery seen before answers with the runs it queued then
    /// (GitHub, GitLab: 200) or is refused (Standard Webhooks, Slack: 401 replayed).
    func queue(_ intents: [WebhookIntent], delivery: String?, replayIsRefused: Bool) async throws -> HTTPResponse {
        var queued: [Run] = []
        var ignored: [String] = []
        var replayed: [Run] = []
        for intent in intents {
            switch intent {
            case .ignore(let why):
                ignored.append(why)
            case .deploy(let service, let version, let requestedBy, let reason, let githubDeployment):
                let key = delivery.map { "\($0):\(service)" }
                if let key, let earlier = try await read({ try $0.run(idempotencyKey: key) }) {
                    if replayIsRefused {
                        throw Refusal(status: 401, code: "replayed", message: "\(SignatureFailure.replayed) (run \(earlier.id))")
                    }
                    replayed.append(earlier)
                    continue
                }
                // A pipeline's deploy to a locked service waits for the lock instead of being lost.
                let outcome = try await enqueueDeploy(service: service, version: version, reason: reason, requestedBy: requestedBy,
                                                      key: key, waitForLock: true)
                if let githubDeployment {
                    try await requests.setReplyTargets(of: outcome.run.id, replyURL: nil, githubDeployment: githubDeployment)
                }
                queued.append(outcome.run)
            }
        }
        let status = queued.isEmpty ? 200 : 202
        return .json(status, JSONWriter.bytes { w in
            w.object { w in
                w.key("queued"); w.array { w in for run in queued { w.run(run) } }
                w.key("already_queued"); w.array { w in for run in replayed { w.int(run.id) } }
                w.key("ignored"); w.array { w in for why in ignored { w.string(why) } }
            }
        })
    }

    func refuseWhileStopping() throws {
        if let refusal = shutdown.writeRefusal {
            throw Refusal(status: 503, code: refusal.code, message: refusal.message)
        }
    }
}
