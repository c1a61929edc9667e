import Configuration
import Integrations
import WireFormat
import MicroHTTP
import Rollout

/// `GET /api/v1/services/{name}/plan`: how long the next roll of a service will take, what
/// bounds it and what would make it faster (`RollForecast`), from the target group's own
/// settings, the service's plan and its last runs.
extension API {
    func servicePlan(_ request: HTTPRequest) async throws -> HTTPResponse {
        let name = request.parameters["name"] ?? ""
        let service = try knownService(name)
        let read: GroupTiming?
        do {
            read = try await services.timing(for: name)
        } catch {
            throw Refusal(status: 502, code: "load_balancer_error", message: "the target group of \(name) cannot be read: \(error)")
        }
        guard let timing = read else {
            throw Refusal(status: 503, code: "load_balancer_unavailable", message: "service \(name) has no load balancer to read")
        }
        let (summary, times, shares) = try await self.read { history in
            (try history.serviceSummary(name), try history.phaseTimes(service: name, runs: 20), try history.drainIdleShares(service: name, runs: 20))
        }
        let targets = await services.targetStates(for: name, running: summary.running, leftOut: summary.leftOut)?.count ?? 0
        let idle = IdleShare(shares)
        let forecast = RollForecast(plan: service.plan, timing: timing, targets: targets, history: times, idle: idle)
        return .json(200, JSONWriter.bytes { w in w.forecast(forecast, service: name, timing: timing, history: times) })
    }
}

extension JSONWriter {
    mutating func seconds(_ duration: Duration?) {
        guard let duration else { null(); return }
        double((duration.seconds * 1000).rounded() / 1000)
    }

    mutating func forecast(_ forecast: RollForecast, service: String, timing: GroupTiming, history: [Phase: PhaseTimes]) {
        object { w in
            w.key("service"); w.string(service)
            w.key("targets"); w.int(Int64(forecast.targets))
            w.key("batch_size"); w.int(Int64(forecast.batchSize))
            w.key("batches"); w.int(Int64(forecast.batches))
            w.key("out_of_service_per_target_s"); w.seconds(forecast.perTarget)
            w.key("bound_by"); w.string(forecast.boundBy.rawValue)
            w.key("parts"); w.array { w in
                for part in forecast.parts {
                    w.object { w in
                        w.key("name"); w.string(part.name.rawValue)
                        w.key("expected_s"); w.seconds(part.expected)
                        w.key("from"); w.string(part.from)
                    }
                }
            }
            w.key("drain_idle"); if let idle = forecast.idle {
                w.object { w in
                    w.key("median_share"); w.double((idle.median * 1000).rounded() / 1000)
                    w.key("drains"); w.int(Int64(idle.drains))
                }
            } else { w.null() }
            w.key("prepare_s"); w.seconds(forecast.prepare)
            w.key("bake_s"); w.seconds(forecast.bake)
            w.key("roll_s"); w.seconds(forecast.total)
            w.key("slow_start_s"); w.seconds(forecast.slowStart)
            w.key("group"); w.object { w in
                w.key("deregistration_delay_s"); w.seconds(timing.deregistrationDelay)
                w.key("health_check_interval_s"); w.seconds(timing.healthCheckInterval)
                w.key("health_check_timeout_s"); w.seconds(timing.healthCheckTimeout)
                w.key("healthy_threshold"); w.int(timing.healthyThreshold.map(Int64.init))
                w.key("slow_start_s"); w.seconds(timing.slowStart)
            }
            w.key("history"); w.object { w in
                for phase in Phase.allCases {
                    guard let times = history[phase] else { continue }
                    w.key(text: phase.rawValue); w.object { w in
                        w.key("p50_s"); w.seconds(times.p50)
                        w.key("p90_s"); w.seconds(times.p90)
                        w.key("samples"); w.int(Int64(times.samples))
                    }
                }
            }
            w.key("advice"); w.array { w in
                for item in forecast.advice {
                    w.object { w in
                        w.key("change"); w.string(item.change.rawValue)
                        w.key("text"); w.string(item.text)
                        w.key("saves_per_target_s"); w.seconds(item.savesPerTarget)
                        w.key("saves_on_roll_s"); w.seconds(item.savesOnRoll)
                    }
                }
            }
            w.key("summary"); w.array { w in for line in forecast.summary(service: service) { w.string(line) } }
        }
    }
}
