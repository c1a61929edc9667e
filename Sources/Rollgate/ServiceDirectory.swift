import Rollout
import SQLiteStore

/// Each configured service's plan and load balancer, built once at start.
public struct ServiceDirectory: Sendable {
    struct Entry: Sendable {
        let config: ServiceConfig
        let loadBalancer: (any LoadBalancer)?
        /// Why there is no load balancer (an AWS target group before the ELBv2 client exists).
        let unavailable: String?
    }

    let entries: [String: Entry]

    init(config: Config, store: Store, clock: any RolloutClock, environment: [String: String]) throws {
        var entries: [String: Entry] = [:]
        let aws = AWSAccess(settings: config.aws, environment: environment, clock: clock)
        for service in config.services {
            switch service.source {
            case .simulated(let settings):
                let loadBalancer = try SimulatedLoadBalancer(service: service.name, settings: settings, store: store, clock: clock)
                entries[service.name] = Entry(config: service, loadBalancer: loadBalancer, unavailable: nil)
            case .awsTargetGroup(let arn):
                switch aws.loadBalancer(for: arn) {
                case .success(let loadBalancer):
                    entries[service.name] = Entry(config: service, loadBalancer: loadBalancer, unavailable: nil)
                case .failure(let problem):
                    entries[service.name] = Entry(config: service, loadBalancer: nil,
                                                  unavailable: "service \(service.name): \(problem.description)")
                }
            }
        }
        self.entries = entries
    }

    public func loadBalancer(for service: String) -> (any LoadBalancer)? { entries[service]?.loadBalancer }

    /// What the load balancer says of each registered target, plus the target the running
    /// run has in hand even when it is out of the group (so a page never hides it).
    /// Nil when the load balancer cannot be asked.
    func targetStates(for service: String, running: Run?) async -> [(target: Target, health: TargetHealth)]? {
        guard let loadBalancer = loadBalancer(for: service),
              var listed = try? await loadBalancer.targets() else { return nil }
        let inHand = running?.steps.last.map { Target(id: $0.targetID, port: $0.targetPort) }
        if let inHand, !listed.contains(where: { $0.target == inHand }),
           let observation = try? await loadBalancer.health(of: inHand) {
            switch observation {
            case .health(let health): listed.append((inHand, health))
            case .notFound: listed.append((inHand, TargetHealth(.unused, reason: "Target.NotRegistered")))
            }
        }
        return listed.sorted { $0.target < $1.target }
    }

    /// The roll for a run, or why it cannot be rolled.
    func roll(for run: Run, executor: any HookExecutor, journal: any RunJournal, clock: any RolloutClock,
              logger: Logger) -> Result<Roll, Dispatcher.RollRefusal> {
        guard let entry = entries[run.service] else {
            return .failure(.init("service \(run.service) is not in the configuration any more"))
        }
        guard let loadBalancer = entry.loadBalancer else {
            return .failure(.init(entry.unavailable ?? "service \(run.service) has no load balancer"))
        }
        return .success(Roll(run: run, plan: entry.config.plan, loadBalancer: loadBalancer, executor: executor,
                             journal: journal, clock: clock, logger: logger))
    }
}

import ELB
import Logging
