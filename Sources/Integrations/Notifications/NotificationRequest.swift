import Configuration
import WireFormat
import Outbound
import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What each destination is sent for an event: Slack text, a Standard Webhooks JSON body
/// (`type`, `timestamp`, `data`), or a GitHub deployment status.
enum NotificationRequest {
    /// A receiver's answer is read up to 64 KiB: only its status matters.
    static let maxAnswerBytes = 64 << 10

    static func build(for destination: Destination, event: RunEventRecord, run: Run, config: Config, now: Date) -> OutboundRequest {
        var request = make(for: destination, event: event, run: run, config: config, now: now)
        request.maxResponseBytes = maxAnswerBytes
        return request
    }

    private static func make(for destination: Destination, event: RunEventRecord, run: Run, config: Config, now: Date) -> OutboundRequest {
        let json = [("Content-Type", "application/json")]
        switch destination.kind {
        case .slackWebhook(let url):
            return OutboundRequest(method: "POST", url: url, headers: json, body: JSONValue.object([("text", .string(text(event, run, config)))]).bytes,
                                   timeout: .seconds(10))
        case .slackReply(let url):
            let body = JSONValue.object([("response_type", .string("in_channel")), ("replace_original", .bool(false)),
                                         ("text", .string(text(event, run, config)))])
            return OutboundRequest(method: "POST", url: url, headers: json, body: body.bytes, timeout: .seconds(10))
        case .signedWebhook(let url, let secret):
            let body = payload(event, run)
            let id = "evt_\(event.seq)"   // the same on every retry: receivers deduplicate by it
            let timestamp = Int64(now.timeIntervalSince1970)
            let signature = WebhookSignature.standardHeader(body: body, id: id, timestamp: timestamp, secret: secret) ?? ""
            return OutboundRequest(method: "POST", url: url, headers: json + [
                ("webhook-id", id), ("webhook-timestamp", "\(timestamp)"), ("webhook-signature", signature)], body: body, timeout: .seconds(10))
        case .githubStatuses(let deployment, let token):
            let parts = deployment.split(separator: "/")
            let path = parts.count == 3 ? "/repos/\(parts[0])/\(parts[1])/deployments/\(parts[2])/statuses" : "/invalid"
            var fields: [(String, JSONValue)] = [("state", .string(githubState(event))),
                                                 ("description", .string(String(text(event, run, nil).prefix(140))))]
            if let base = config.publicURL { fields.append(("log_url", .string("\(base)/api/v1/runs/\(run.id)"))) }
            return OutboundRequest(method: "POST", url: config.githubAPI + path, headers: json + [
                ("Authorization", "Bearer \(token)"), ("Accept", "application/vnd.github+json"), ("User-Agent", "rollgate")],
                body: JSONValue.object(fields).bytes, timeout: .seconds(10))
        }
    }

    /// One line a person reads, with a link when the server knows its public address.
    static func text(_ event: RunEventRecord, _ run: Run, _ config: Config?) -> String {
        let name = "run \(run.id) (\(run.service) \(run.version))"
        var line: String
        switch event.event {
        case .queued: line = "\(name) queued by \(run.requestedBy)" + (run.reason.map { ": \($0)" } ?? "")
        case .started: line = "\(name) started, asked by \(run.requestedBy)"
        case .targetDone: line = "\(name): \(event.targetID ?? "a target") is back in service at \(run.version)"
        case .targetLeftOut: line = "\(name): \(event.targetID ?? "a target") is left out of the load balancer: \(event.detail ?? "")"
        case .succeeded: line = "\(name) succeeded: every target runs \(run.version)"
        case .failed: line = "\(name) failed: \(event.detail ?? "")"
        case .cancelled: line = "\(name) cancelled: \(event.detail ?? "")"
        // Never routed to a destination (`notifies` is false); said plainly all the same.
        case .stepStarted, .stepSucceeded, .stepFailed:
            line = "\(name): \(event.phase?.rawValue ?? "step") of \(event.targetID ?? "a target") \(event.event.rawValue.dropFirst(5))"
        case .targetState: line = "\(name): \(event.targetID ?? "a target") is \(event.detail ?? "")"
        case .targetForgotten: line = "\(name): \(event.targetID ?? "a target"), left out, is forgotten \(event.detail ?? ""); rollgate no longer counts it"
        }
        if let base = config?.publicURL { line += " \(base)/api/v1/runs/\(run.id)" }
        return line
    }

    static func payload(_ event: RunEventRecord, _ run: Run) -> [UInt8] {
        JSONWriter.bytes { w in
            w.object { w in
                w.key("type"); w.string("run.\(event.event.rawValue)")
                w.key("timestamp"); w.time(event.at)
                w.key("data"); w.object { w in
                    w.key("seq"); w.int(event.seq)
                    w.key("run_id"); w.int(run.id)
                    w.key("service"); w.string(run.service)
                    w.key("version"); w.string(run.version)
                    w.key("status"); w.string(run.status.rawValue)
                    w.key("requested_by"); w.string(run.requestedBy)
                    w.key("reason"); w.string(run.reason)
                    w.key("target_id"); w.string(event.targetID)
                    w.key("detail"); w.string(event.detail)
                }
            }
        }
    }

    /// GitHub's deployment states for rollgate's events.
    static func githubState(_ event: RunEventRecord) -> String {
        switch event.event {
        case .queued: return "queued"
        case .started, .targetDone, .targetLeftOut, .stepStarted, .stepSucceeded, .stepFailed, .targetState, .targetForgotten: return "in_progress"
        case .succeeded: return "success"
        case .failed: return "failure"
        case .cancelled: return "error"
        }
    }
}
