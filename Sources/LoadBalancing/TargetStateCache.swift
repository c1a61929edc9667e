import Configuration
import Rollout
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What viewers (the page, `/api/v1/services`, `rollgate status`) see of each service's
/// targets, served from what rollgate already knows: the roll's own observations (every
/// waiter poll) and one DescribeTargetHealth per service at most every `ttl`, shared by every
/// viewer however many there are. Viewers never become load-balancer calls of their own.
package final class TargetStateCache: TargetObserver, Sendable {
    struct Snapshot: Sendable {
        /// The group's registered targets, and the extra ones asked about by id (left out, in hand).
        var states: [Target: TargetHealth?]
        var at: Date
    }

    let ttl: Duration
    let clock: any RolloutClock
    private let snapshots = Mutex<[String: Snapshot]>([:])
    /// The newest observation of each target by a roll, per service.
    private let observations = Mutex<[String: [Target: (TargetObservation, Date)]]>([:])
    /// One refresh per service at a time; concurrent viewers wait for the same one.
    private let refreshing = Mutex<[String: Task<Snapshot?, Never>]>([:])
    /// The last state told of each target, to tell only changes.
    private let told = Mutex<[String: [Target: String]]>([:])
    /// Hears each change of a target's state (the events stream's source).
    let onChange: @Sendable (_ service: String, _ target: Target, _ state: String, _ run: RunID?, _ at: Date) -> Void

    init(ttl: Duration = .seconds(5), clock: any RolloutClock,
         onChange: @escaping @Sendable (_ service: String, _ target: Target, _ state: String, _ run: RunID?, _ at: Date) -> Void = { _, _, _, _, _ in }) {
        self.ttl = ttl
        self.clock = clock
        self.onChange = onChange
    }

    package func observed(service: String, target: Target, observation: TargetObservation, run: RunID?, at: Date) {
        observations.withLock { $0[service, default: [:]][target] = (observation, at) }
        tell(service, target, observation.description, run: run, at: at)
    }

    /// Tells a state that differs from the last one told (the first sighting after a start
    /// is only remembered: it is not a change anyone saw happen).
    private func tell(_ service: String, _ target: Target, _ state: String, run: RunID?, at: Date) {
        let changed = told.withLock { told -> Bool in
            let before = told[service]?[target]
            told[service, default: [:]][target] = state
            return before != nil && before != state
        }
        if changed { onChange(service, target, state, run, at) }
    }

    /// Every target the service knows with its state; nil when the group could not be read.
    func views(service: String, loadBalancer: any LoadBalancer, running: Run?, leftOut: [LeftOutTarget]) async -> [TargetView]? {
        var wanted = leftOut.map(\.target)
        if let step = running?.steps.last { wanted.append(Target(id: step.targetID, port: step.targetPort)) }
        let now = clock.now
        var snapshot = snapshots.withLock { $0[service] }
        if snapshot == nil || now.since(snapshot!.at) >= ttl || wanted.contains(where: { snapshot!.states[$0] == nil }) {
            snapshot = await refresh(service, loadBalancer: loadBalancer, extra: wanted) ?? snapshot
        }
        guard let snapshot else { return nil }
        let observed = observations.withLock { $0[service] ?? [:] }
        var views: [TargetView] = []
        for (target, health) in snapshot.states {
            var current = health
            // A roll's observation newer than the snapshot wins: the page follows the waiter.
            if let (observation, at) = observed[target], at >= snapshot.at {
                switch observation {
                case .health(let seen): current = seen
                case .notFound: current = TargetHealth(.unused, reason: "Target.NotRegistered")
                }
            }
            views.append(TargetView(target: target, health: current, leftOut: leftOut.first { $0.target == target }, runningRun: running?.id))
        }
        return views.sorted { $0.target < $1.target }
    }

    private func refresh(_ service: String, loadBalancer: any LoadBalancer, extra: [Target]) async -> Snapshot? {
        let task = refreshing.withLock { refreshing -> Task<Snapshot?, Never> in
            if let running = refreshing[service] { return running }
            let clock = self.clock
            let task = Task<Snapshot?, Never> {
                guard let listed = try? await loadBalancer.targets() else { return nil }
                var states: [Target: TargetHealth?] = [:]
                for (target, health) in listed { states[target] = health }
                for target in extra where states[target] == nil {
                    switch try? await loadBalancer.health(of: target) {
                    case .health(let health)?: states[target] = health
                    case .notFound?: states[target] = TargetHealth(.unused, reason: "Target.NotRegistered")
                    case nil: states[target] = .some(nil)
                    }
                }
                return Snapshot(states: states, at: clock.now)
            }
            refreshing[service] = task
            return task
        }
        let snapshot = await task.value
        refreshing.withLock { $0[service] = nil }
        if let snapshot {
            snapshots.withLock { $0[service] = snapshot }
            for (target, health) in snapshot.states {
                tell(service, target, health?.description ?? "unknown", run: nil, at: snapshot.at)
            }
        }
        return snapshot
    }
}
