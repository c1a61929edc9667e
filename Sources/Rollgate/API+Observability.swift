import MicroHTTP
import Rollout
import SQLiteStore

/// What monitoring reads: liveness with the database's state, Prometheus metrics, and what
/// became of each notification.
extension API {
    /// What `rollgate --version` and `rollgate_build_info` say.
    public static let version = "0.7.0"

    /// `GET /api/v1/runs/{id}/deliveries`: each notification of the run, where and how it went.
    func deliveries(_ request: HTTPRequest) throws -> HTTPResponse {
        let run = try findRun(request)
        let deliveries = try store.deliveries(of: run.id)
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

    /// Liveness, and whether the database takes writes: `degraded` (still 200: restarting
    /// would not help) with the last write error while it does not.
    func healthz() -> HTTPResponse {
        if shutdown.isShuttingDown {
            return .json(503, JSONValue.object([("status", .string("shutting_down"))]).bytes)
        }
        guard let failure = health.failure else { return API.healthy }
        return .json(200, JSONWriter.bytes { w in
            w.object { w in
                w.key("status"); w.string("degraded")
                w.key("database"); w.string("not writable")
                w.key("error"); w.string(failure.message)
                w.key("since"); w.time(failure.since)
            }
        })
    }

    /// Prometheus text: runs by service and status, and which services are rolling now.
    func metrics(_ request: HTTPRequest) throws -> HTTPResponse {
        var text = "# HELP rollgate_build_info The running build.\n# TYPE rollgate_build_info gauge\n"
        text += "rollgate_build_info{version=\"\(API.version)\"} 1\n"
        let counts = try store.runCounts()
        let count = { (service: String, status: RunStatus) in counts.first { $0.service == service && $0.status == status }?.count ?? 0 }
        text += "# HELP rollgate_runs_finished_total Runs that ended, by service and outcome.\n# TYPE rollgate_runs_finished_total counter\n"
        for service in config.services {
            for status in RunStatus.allCases where status.isTerminal {
                text += "rollgate_runs_finished_total{service=\"\(service.name)\",outcome=\"\(status.rawValue)\"} \(count(service.name, status))\n"
            }
        }
        text += "# HELP rollgate_runs_queued Runs waiting for their turn, by service.\n# TYPE rollgate_runs_queued gauge\n"
        for service in config.services {
            text += "rollgate_runs_queued{service=\"\(service.name)\"} \(count(service.name, .queued))\n"
        }
        text += "# HELP rollgate_rolling 1 while a run of the service is rolling.\n# TYPE rollgate_rolling gauge\n"
        for service in config.services {
            let rolling = counts.contains { $0.service == service.name && $0.status == .running }
            text += "rollgate_rolling{service=\"\(service.name)\"} \(rolling ? 1 : 0)\n"
        }
        let leftOut = try store.leftOutCounts()
        text += "# HELP rollgate_targets_left_out Targets rollgate took out of the load balancer and has not put back.\n# TYPE rollgate_targets_left_out gauge\n"
        for service in config.services {
            text += "rollgate_targets_left_out{service=\"\(service.name)\"} \(leftOut[service.name] ?? 0)\n"
        }
        text += "# HELP rollgate_database_writable 1 while database writes succeed.\n# TYPE rollgate_database_writable gauge\n"
        text += "rollgate_database_writable \(health.failure == nil ? 1 : 0)\n"
        text += "# HELP rollgate_database_write_failures_total Database writes that failed and were retried.\n# TYPE rollgate_database_write_failures_total counter\n"
        text += "rollgate_database_write_failures_total \(health.failedWrites)\n"
        text += "# HELP rollgate_open_streams Live log streams open now.\n# TYPE rollgate_open_streams gauge\n"
        text += "rollgate_open_streams \(streams.value)\n"
        text += "# HELP rollgate_notifications Notification deliveries by destination and status.\n# TYPE rollgate_notifications gauge\n"
        for (destination, status, count) in try store.deliveryCounts() {
            text += "rollgate_notifications{destination=\"\(destination)\",status=\"\(status.rawValue)\"} \(count)\n"
        }
        return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", text: text)
    }
}
