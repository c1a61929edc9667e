import Configuration
import LoadBalancing
import Page
import Rollout
import WireFormat
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `GET /api/v1/services`: each service as the API shows it.
extension JSONWriter {
    /// A service: last good version, its lock, the running run and where it is, queued
    /// runs, and every target it knows: what the load balancer says, or `left_out` for a
    /// target rollgate took out and has not put back (null if the group cannot be asked).
    mutating func service(_ service: ServiceConfig, _ summary: ServiceSummary, _ targets: [TargetView]?, now: Date) {
        object { w in
            w.key("name"); w.string(service.name)
            w.key("target_group")
            switch service.source {
            case .simulated: w.string("simulated")
            case .awsTargetGroups(let arns): w.string(arns[0])
            }
            if case .awsTargetGroups(let arns) = service.source, arns.count > 1 {
                w.key("target_groups"); w.array { w in for arn in arns { w.string(arn) } }
            }
            w.key("last_good_version"); w.string(summary.lastGoodVersion)
            w.key("last_good_run_id"); w.int(summary.lastGoodRunID)
            w.key("lock")
            if let lock = summary.lock, lock.holds(at: now) { w.lock(lock) } else { w.null() }
            w.key("running")
            if let run = summary.running {
                let step = run.steps.last
                w.object { w in
                    w.key("run_id"); w.int(run.id)
                    w.key("version"); w.string(run.version)
                    w.key("since"); w.time(run.startedAt)
                    w.key("target_id"); w.string(step?.targetID)
                    w.key("phase"); w.string(step?.phase.rawValue)
                    // `1 of 3 targets done; web-2 draining for 12 s of ~600 s`.
                    let progress = RunProgress(run, targets: summary.runningPlanned ?? targets?.count)
                    w.key("targets_done"); w.int(Int64(progress.done))
                    w.key("targets_total"); w.int(Int64(progress.total))
                    w.key("progress"); w.string(progress.text(now: now, plan: service.plan))
                }
            } else {
                w.null()
            }
            w.key("queued"); w.array { w in for id in summary.queued { w.int(id) } }
            w.key("left_out"); w.int(Int64(summary.leftOut.count))
            // A group whose health check rollgate tightened for a run and has not put back.
            w.key("health_check_changed"); w.array { w in
                for changed in summary.changedHealthChecks {
                    w.object { w in
                        w.key("target_group"); w.string(changed.targetGroup)
                        w.key("run_id"); w.int(changed.run)
                        w.key("since"); w.time(changed.since)
                        w.key("original"); w.object { w in
                            w.key("interval_s"); w.int(Int64(changed.original.interval.seconds.rounded()))
                            w.key("timeout_s"); w.int(Int64(changed.original.timeout.seconds.rounded()))
                            w.key("healthy_threshold"); w.int(Int64(changed.original.healthyThreshold))
                        }
                    }
                }
            }
            // What runs where: each target's version, how many serve, one line for people.
            let fleet = targets.map { FleetVersions(targets: $0.map { ($0.target, $0.state) }, versions: summary.versions) }
            w.key("targets")
            if let targets, let fleet {
                w.array { w in
                    for (view, entry) in zip(targets, fleet.entries) { w.target(view, version: entry.version) }
                }
            } else {
                w.null()
            }
            w.key("serving"); if let fleet { w.int(Int64(fleet.serving)) } else { w.null() }
            w.key("versions"); w.array { w in
                for group in fleet?.groups ?? [] {
                    w.object { w in
                        w.key("version"); w.string(group.version)
                        w.key("targets"); w.array { w in for id in group.targets { w.string(id) } }
                    }
                }
            }
            w.key("fleet"); w.string(fleet?.summary)
        }
    }

    mutating func target(_ view: TargetView, version: TargetVersion?) {
        object { w in
            w.key("id"); w.string(view.target.id)
            w.key("port"); w.int(Int64(view.target.port))
            w.key("state"); w.string(view.state)
            // The version rollgate last put there (null: never deployed by rollgate, unknown).
            w.key("version"); w.string(version?.version)
            w.key("version_run_id"); w.int(version?.runID)
            w.key("version_since"); w.time(version?.at)
            w.key("reason"); w.string(view.health?.reason)
            w.key("load_balancer_state"); w.string(view.health?.state.rawValue)
            w.key("left_out")
            if let left = view.leftOut { w.leftOut(left) } else { w.null() }
        }
    }
}
