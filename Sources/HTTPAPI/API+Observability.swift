import Configuration
import Integrations
import WireFormat
import MicroHTTP
import Rollout

/// What monitoring reads: liveness with the database's state, Prometheus metrics, and what
/// became of each notification.
extension API {
    /// What `rollgate --version` and `rollgate_build_info` say.
    public static let version = "0.7.0"

    /// `GET /api/v1/runs/{id}/deliveries`: each notification of the run, where and how it went.
    func deliveries(_ request: HTTPRequest) throws -> HTTPResponse {
        let run = try findRun(request)
        let deliveries = try history.deliveries(of: run.id)
        return .json(200, JSONWriter.bytes { w in
            w.object { w in
                w.key("run_id"); w.int(run.id)
                w.key("deliveries"); w.array { w in
                    for delivery in deliveries {
                        w.object { w in
                            w.key("destination"); w.string(delivery.destination)
                            w.key("seq"); w.int(delivery.seq)
                            w.key("event"); w.string(delivery.event.rawValue)
                            w.key("status"); w.string(delivery.status.rawValue)
                            w.key("attempts"); w.int(Int64(delivery.attempts))
                            w.key("last_error"); w.string(delivery.lastError)
                            w.key("delivered_at"); w.time(delivery.deliveredAt)
                        }
                    }
                }
            }
        })
    }

    /// How long a write may wait before `/healthz` says the database is slow.
    static let slowWrite: Duration = .seconds(3)

    /// Liveness, and whether the database takes writes: `degraded` (still 200: restarting
    /// would not help) with the last write error while it does not. Every 200 names the
    /// replica that answered and the runs it holds.
    func healthz() -> HTTPResponse {
        if let refusal = shutdown.writeRefusal, refusal.code != "database_not_held" {
            return .json(503, JSONValue.object([("status", .string(refusal.code))]).bytes)
        }
        let held = self.held.now
        func degraded(_ fields: [(String, JSONValue)]) -> HTTPResponse {
            .json(200, JSONValue.object([("status", .string("degraded"))] + fields + holding(held)).bytes)
        }
        guard let failure = health.failure else {
            if let refusal = shutdown.writeRefusal {
                return degraded([("database", .string("not held")), ("error", .string(refusal.message))])
            }
            // A write stuck behind the write lock (another process, a long transaction): the
            // API's deploys and the rolls' records wait with it.
            if let waited = history.longestWriteWait, waited > API.slowWrite {
                return degraded([("database", .string("slow")), ("error", .string("a write has waited \(waited.spoken) for the database"))])
            }
            if held.isEmpty { return healthy }
            return .json(200, JSONValue.object([("status", .string("ok")), ("database", .string("writable"))] + holding(held)).bytes)
        }
        return degraded([("database", .string("not writable")), ("error", .string(failure.message)),
                         ("since", .string(Timestamp.format(failure.since)))])
    }

    /// The replica's name and the runs it holds, for `/healthz`.
    private func holding(_ held: [(run: RunID, service: String)]) -> [(String, JSONValue)] {
        [("replica", .string(history.replica)),
         ("runs", .array(held.map { .object([("id", .number(Double($0.run))), ("service", .string($0.service))]) }))]
    }

    /// Prometheus text: the registry that counts as things happen, plus gauges read now from
    /// memory and from indexes over what is active (queued, running, left out, pending).
    func metrics(_ request: HTTPRequest) throws -> HTTPResponse {
        let t = telemetry
        t.set("rollgate_build_info", help: "The running build.", labels: [("version", API.version)], to: 1)
        let active = try history.activeRunCounts()
        let leftOut = try history.leftOutCounts()
        for service in config.services {
            let queued = active.first { $0.service == service.name && $0.status == .queued }?.count ?? 0
            let rolling = active.contains { $0.service == service.name && $0.status == .running }
            t.set("rollgate_runs_queued", help: "Runs waiting for their turn, by service.", labels: [("service", service.name)], to: Double(queued))
            t.set("rollgate_rolling", help: "1 while a run of the service is rolling.", labels: [("service", service.name)], to: rolling ? 1 : 0)
            t.set("rollgate_targets_left_out", help: "Targets rollgate took out of the load balancer and has not put back.",
                  labels: [("service", service.name)], to: Double(leftOut[service.name] ?? 0))
        }
        t.set("rollgate_database_writable", help: "1 while database writes succeed.", to: health.failure == nil ? 1 : 0)
        let held = Dictionary(self.held.now.map { ($0.service, 1) }, uniquingKeysWith: +)
        for service in config.services {
            t.set("rollgate_runs_held", help: "Runs of the service this replica holds now (rolling, claimed or taken over by it).",
                  labels: [("replica", history.replica), ("service", service.name)], to: Double(held[service.name] ?? 0))
        }
        t.catchUpFailedWrites(total: health.failedWrites)
        t.set("rollgate_open_streams", help: "Live event and log streams open now.", to: Double(streams.value))
        t.set("rollgate_aws_budget_share", help: "This replica's fraction of aws.describe_per_second and changes_per_second (by the runs each replica alive holds, at least one's worth each; 1 alone).",
              labels: [("replica", history.replica)], to: services.awsBudgets.share)
        t.setPending(try history.pendingDeliveryCounts())
        // Written fresh each scrape (a target's old version must not linger as a series).
        var info = "# HELP rollgate_target_info The version rollgate last put on each target it deployed.\n# TYPE rollgate_target_info gauge\n"
        for service in config.services {
            for recorded in try history.targetVersions(service: service.name) {
                info += "rollgate_target_info{service=\"\(API.labelValue(service.name))\",target=\"\(API.labelValue(recorded.target.id))\","
                    + "version=\"\(API.labelValue(recorded.version))\"} 1\n"
            }
        }
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: t.exposition() + Array(info.utf8))
    }

    /// A Prometheus label value: backslash, quote and newline escaped.
    static func labelValue(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
