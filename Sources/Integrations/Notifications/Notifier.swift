import Configuration
import WireFormat
import Monitoring
import Logging
import Outbound
import Rollout

/// Tells people about runs, from the durable event log: a run's events go to its service's
/// Slack incoming webhook, signed webhook and (for runs GitHub started) GitHub deployment
/// statuses, and to the Slack `response_url` of a run started from chat while it is valid.
/// Each destination gets its events in order; a failed delivery is retried with a doubling
/// backoff and later events wait behind it; a restart goes on from what the database says
/// was not delivered. It runs beside the rolls and never slows or fails one.
public final class Notifier: Sendable {
    let outbox: any EventOutbox
    let config: Config
    let http: any OutboundHTTP
    let clock: any RolloutClock
    let logger: Logger
    let telemetry: Telemetry?
    /// This process's hold on the database: nothing is sent unless it may act (one sender at
    /// a time, so no notification goes twice when another process took the database over).
    let holding: LeaseGuard?
    /// The fan-out's own cursor through the event log.
    static let fanOutCursor = "fan-out"
    /// Slack: a `response_url` takes 5 messages in its first 30 minutes.
    static let replyUses = 5
    static let replyLifetime: Duration = .seconds(1800)

    public init(outbox: any EventOutbox, config: Config, http: any OutboundHTTP, clock: any RolloutClock, logger: Logger,
                telemetry: Telemetry? = nil, holding: LeaseGuard? = nil) {
        self.telemetry = telemetry
        self.holding = holding
        self.outbox = outbox
        self.config = config
        self.http = http
        self.clock = clock
        self.logger = logger
    }

    /// One round: queue new events for their destinations, then one delivery per due destination.
    public func pass() async {
        if let holding, !holding.mayAct { return }
        do {
            try await fanOut()
        } catch {
            logger.error("cannot queue notifications", metadata: ["error": "\(error)"])
        }
        do {
            let destinations = try await outbox.destinationsWithPending()
            await withTaskGroup(of: Void.self) { group in
                for destination in destinations {
                    group.addTask { await self.deliverDue(to: destination) }
                }
            }
        } catch {
            logger.error("cannot read pending notifications", metadata: ["error": "\(error)"])
        }
    }

    /// Every event after the fan-out cursor, to each destination that takes it. The cursor
    /// starts at the log's end the first time, so an upgrade does not replay history.
    func fanOut() async throws {
        var cursor: Int64
        if let saved = try await outbox.cursor(of: Notifier.fanOutCursor) { cursor = saved } else { cursor = try await outbox.lastEventSeq() }
        while true {
            let events = try await outbox.events(after: cursor, limit: 500)
            guard let last = events.last else {
                try await outbox.queueDeliveries(to: Notifier.fanOutCursor, [], upTo: cursor, at: clock.now)
                return
            }
            var byDestination: [String: [RunEventRecord]] = [:]
            var replyTaken: [String: Int] = [:]
            for event in events {
                for destination in try await destinations(for: event, replyTaken: &replyTaken) {
                    byDestination[destination.name, default: []].append(event)
                }
            }
            for (name, routed) in byDestination.sorted(by: { $0.key < $1.key }) {
                try await outbox.queueDeliveries(to: name, routed, upTo: last.seq, at: clock.now)
            }
            try await outbox.queueDeliveries(to: Notifier.fanOutCursor, [], upTo: last.seq, at: clock.now)
            cursor = last.seq
        }
    }

    /// Where one event goes. The Slack reply takes a run's events while it is valid (keeping
    /// its last use for the run's end); the service's Slack webhook takes the rest.
    func destinations(for event: RunEventRecord, replyTaken: inout [String: Int]) async throws -> [Destination] {
        guard event.event.notifies, let service = config.service(named: event.service) else { return [] }
        var found: [Destination] = []
        let targets = try await outbox.replyTargets(of: event.runID)
        var repliedHere = false
        if let url = targets.replyURL, event.event != .queued, let run = try await outbox.run(event.runID) {
            let name = Destination.replyName(event.runID)
            let used: Int
            if let taken = replyTaken[name] { used = taken } else {
                used = try await outbox.deliveries(of: event.runID).filter { $0.destination == name }.count
            }
            let terminal = [.succeeded, .failed, .cancelled].contains(event.event)
            let fresh = event.at.since(run.createdAt) < Notifier.replyLifetime
            if fresh && (used < Notifier.replyUses - 1 || (terminal && used < Notifier.replyUses)) {
                found.append(Destination(name: name, kind: .slackReply(url)))
                replyTaken[name] = used + 1
                repliedHere = true
            }
        }
        if let url = service.notify.slackWebhook, !repliedHere {
            found.append(Destination(name: "slack:\(service.name)", kind: .slackWebhook(url)))
        }
        if let url = service.notify.webhookURL, let secret = service.notify.webhookSecret {
            found.append(Destination(name: "webhook:\(service.name)", kind: .signedWebhook(url: url, secret: secret)))
        }
        // A deployment's statuses end with its run: a later forget is not one of them.
        if let token = service.notify.githubToken, let deployment = targets.githubDeployment, event.event != .targetForgotten {
            found.append(Destination(name: "github:\(event.runID)", kind: .githubStatuses(deployment: deployment, token: token)))
        }
        return found
    }

    /// Delivers what is due to one destination, oldest first, until one attempt fails (the
    /// rest wait behind it) or nothing more is due.
    func deliverDue(to name: String) async {
        for _ in 0..<100 {
            if let holding, !holding.mayAct { return }
            do {
                let now = clock.now
                guard let (event, attempts) = try await outbox.nextDelivery(to: name, at: now) else { return }
                let found = try await outbox.run(event.runID), configured = try await destination(named: name, for: event)
                guard let run = found, let destination = configured else {
                    try await outbox.deliveryFailed(to: name, seq: event.seq, error: "the destination is no longer configured", retryAt: nil)
                    continue
                }
                let request = NotificationRequest.build(for: destination, event: event, run: run, config: config, now: clock.now)
                let failure: String
                do {
                    let response = try await http.send(request)
                    if (200..<300).contains(response.status) {
                        let at = clock.now
                        try await outbox.delivered(to: name, seq: event.seq, at: at)
                        telemetry?.notificationAttempted(destination: name, result: "delivered")
                        continue
                    }
                    // The status and rollgate's own words: never the receiver's body, which anyone
                    // who can read deliveries would otherwise read (a URL may point anywhere).
                    failure = "the receiver answered HTTP \(response.status)"
                } catch let error as OutboundError {
                    failure = error.reason
                }
                // Given up: the next event goes on now; else everything waits for the retry.
                guard try await failed(name, event, attempts, failure) else { return }
            } catch is CancellationError {
                return   // shutdown: what was in flight is sent again after the restart
            } catch {
                logger.error("cannot record a notification", metadata: ["destination": "\(name)", "error": "\(error)"])
                return
            }
        }
    }

    /// Records a failed attempt; true when the delivery was given up.
    private func failed(_ name: String, _ event: RunEventRecord, _ attempts: Int, _ why: String) async throws -> Bool {
        let retry = config.notificationRetry
        let giveUp = attempts + 1 >= retry.attempts
        var delay = retry.first
        for _ in 0..<min(attempts, 30) { delay = min(delay * 2, retry.max) }
        try await outbox.deliveryFailed(to: name, seq: event.seq, error: why, retryAt: giveUp ? nil : clock.now.adding(delay))
        telemetry?.notificationAttempted(destination: name, result: giveUp ? "failed" : "retrying")
        logger.warning("notification not delivered", metadata: ["destination": "\(name)", "seq": "\(event.seq)", "error": "\(why)",
                                                                "attempt": "\(attempts + 1)", "gave_up": "\(giveUp)"])
        return giveUp
    }

    /// A destination, rebuilt from its name and the config (so a restart needs nothing else).
    func destination(named name: String, for event: RunEventRecord) async throws -> Destination? {
        let service = config.service(named: event.service)
        switch name.split(separator: ":", maxSplits: 1).first {
        case "reply":
            return try await outbox.replyTargets(of: event.runID).replyURL.map { Destination(name: name, kind: .slackReply($0)) }
        case "slack":
            return service?.notify.slackWebhook.map { Destination(name: name, kind: .slackWebhook($0)) }
        case "webhook":
            guard let url = service?.notify.webhookURL, let secret = service?.notify.webhookSecret else { return nil }
            return Destination(name: name, kind: .signedWebhook(url: url, secret: secret))
        case "github":
            guard let token = service?.notify.githubToken, let deployment = try await outbox.replyTargets(of: event.runID).githubDeployment else { return nil }
            return Destination(name: name, kind: .githubStatuses(deployment: deployment, token: token))
        default:
            return nil
        }
    }
}

/// One place notifications go.
struct Destination: Sendable {
    enum Kind: Sendable {
        case slackWebhook(String)
        case slackReply(String)
        case signedWebhook(url: String, secret: String)
        /// `OWNER/REPO/ID` of a GitHub deployment.
        case githubStatuses(deployment: String, token: String)
    }
    let name: String
    let kind: Kind

    static func replyName(_ run: RunID) -> String { "reply:\(run)" }
}
