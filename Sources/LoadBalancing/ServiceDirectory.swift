import Hooks
import Configuration
import Dispatch
import Outbound
import Rollout
import SQLStore

/// Each configured service's plan and load balancer, built once at start.
public struct ServiceDirectory: Sendable {
    struct Entry: Sendable {
        let config: ServiceConfig
        let loadBalancer: (any LoadBalancer)?
        /// Why there is no load balancer (an AWS target group before the ELBv2 client exists).
        let unavailable: String?
    }

    let entries: [String: Entry]
    package let cache: TargetStateCache

    /// The process's AWS call budgets (per API and region), split among the replicas alive.
    package let awsBudgets: AWSCallBudgets

    package init(config: Config, store: Store, clock: any RolloutClock, environment: [String: String], http: any OutboundHTTP,
         health: StoreHealth = StoreHealth(), metrics: RollMetrics = RollMetrics(), work: BlockingWork? = nil) throws {
        var entries: [String: Entry] = [:]
        // libcurl is found now, not by a roll's first AWS call halfway through a run.
        if let service = config.services.first(where: \.needsAWS) {
            do { try CurlHTTP.load() } catch {
                throw ServiceDirectory.Unusable(description: "service \(service.name) rolls an AWS target group, which needs libcurl: \(error)")
            }
        }
        let aws = AWSAccess(settings: config.aws, environment: environment, clock: clock, metrics: metrics, http: http)
        awsBudgets = aws.budgets
        for service in config.services {
            switch service.source {
            case .simulated(let settings):
                let loadBalancer = try SimulatedLoadBalancer(service: service.name, settings: settings, store: store, clock: clock,
                                                         health: health, work: work)
                entries[service.name] = Entry(config: service, loadBalancer: loadBalancer, unavailable: nil)
            case .awsTargetGroups(let arns):
                switch aws.loadBalancer(for: arns) {
                case .success(let loadBalancer):
                    entries[service.name] = Entry(config: service, loadBalancer: loadBalancer, unavailable: nil)
                case .failure(let problem):
                    entries[service.name] = Entry(config: service, loadBalancer: nil,
                                                  unavailable: "service \(service.name): \(problem.description)")
                }
            }
        }
        self.entries = entries
        // Each change of a target's state goes on the events stream; it is informational, so
        // a write that fails is dropped (the roll's own records are elsewhere).
        // Written in order on a queue of their own: a change is seen on Swift's pool (a poll,
        // a page asking the group), where no database call may wait.
        let writes = DispatchQueue(label: "rollgate.target-states")
        cache = TargetStateCache(clock: clock) { service, target, state, run, at in
            writes.async { try? store.recordTargetState(service: service, target: target, run: run, state: state, at: at) }
        }
    }

    /// A service this host cannot roll at all: nothing is started.
    struct Unusable: Error, CustomStringConvertible { let description: String }

    public func loadBalancer(for service: String) -> (any LoadBalancer)? { entries[service]?.loadBalancer }

    /// What the service's target group says of its timing (a network call for AWS; its
    /// settings for a simulation); nil for a service without a load balancer.
    package func timing(for service: String) async throws -> GroupTiming? {
        guard let entry = entries[service] else { return nil }
        if case .simulated(let settings) = entry.config.source { return settings.groupTiming }
        guard let timed = entry.loadBalancer?.timed else { return nil }
        return try await timed.timing()
    }

    /// Every target the service knows (registered, left out, in hand), from the cache: what
    /// the roll observed and a shared, rate-limited DescribeTargetHealth. Nil when the load
    /// balancer cannot be asked.
    package func targetStates(for service: String, running: Run?, leftOut: [LeftOutTarget]) async -> [TargetView]? {
        guard let loadBalancer = loadBalancer(for: service) else { return nil }
        return await cache.views(service: service, loadBalancer: loadBalancer, running: running, leftOut: leftOut)
    }

    /// The roll for a run, or why it cannot be rolled.
    package func roll(for run: Run, hooks: HookEnvironment, shutdownAllowance: Duration, journal: any RunJournal,
              clock: any RolloutClock, logger: Logger, context: RollContext) -> Result<Roll, RunFailure> {
        guard let entry = entries[run.service] else {
            return .failure(RunFailure(.serviceNotConfigured, "service \(run.service) is not in the configuration any more"))
        }
        guard let loadBalancer = entry.loadBalancer else {
            return .failure(RunFailure(.loadBalancer, entry.unavailable ?? "service \(run.service) has no load balancer"))
        }
        let executor = HookRunner(baseEnvironment: hooks.base(passing: entry.config.hookEnv), shutdownAllowance: shutdownAllowance)
        return .success(Roll(run: run, plan: entry.config.plan, loadBalancer: loadBalancer, executor: executor,
                             journal: journal, clock: clock, logger: logger, context: context))
    }
}

/// One target of a service as the API and the page show it.
package struct TargetView: Sendable {
    package var target: Target
    /// What the load balancer says; nil when asking it failed.
    package var health: TargetHealth?
    package var leftOut: LeftOutTarget?
    var runningRun: RunID?

    /// The load balancer's state, or `left_out` for a target a finished run left out (the
    /// running run's target in hand shows what the load balancer says of it).
    package var state: String {
        if let leftOut, leftOut.runID != runningRun { return "left_out" }
        return health?.state.rawValue ?? "unknown"
    }
}

import ELB
import Logging
