import Testing
import Rollout

/// Every (interrupted phase x what the load balancer says now) pair, as a table.
@Suite struct ResumeDecisionTests {
    static let states: [(String, TargetObservation)] = [
        ("healthy", .health(TargetHealth(.healthy))),
        ("initial", .health(TargetHealth(.initial, reason: "Elb.RegistrationInProgress"))),
        ("unhealthy", .health(TargetHealth(.unhealthy, reason: "Target.FailedHealthChecks"))),
        ("unavailable", .health(TargetHealth(.unavailable))),
        ("draining", .health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress"))),
        ("unhealthy.draining", .health(TargetHealth(.unhealthyDraining))),
        ("unused", .health(TargetHealth(.unused, reason: "Target.NotRegistered"))),
        ("notFound", .notFound),
    ]

    /// The expected point, by interrupted step (phase, succeeded) and state. Columns follow `states`.
    static let table: [(Phase, Bool, [ResumePoint])] = [
        //                     healthy  initial  unhealthy unavailable draining u.draining unused  notFound
        (.prepare, false, [.start,  .start,  .start,    .start,     .start,  .start,    .start,  .start]),
        (.prepare, true,  [.drain,  .drain,  .drain,    .drain,     .drain,  .drain,    .drain,  .drain]),
        (.drain,   false, [.drain,  .drain,  .drain,    .drain,     .drain,  .drain,    .drain,  .drain]),
        (.drain,   true,  [.drain,  .drain,  .drain,    .drain,     .drain,  .drain,    .deploy, .deploy]),
        (.deploy,  false, [.drain,  .drain,  .drain,    .drain,     .drain,  .drain,    .deploy, .deploy]),
        (.deploy,  true,  [.drain,  .drain,  .drain,    .drain,     .drain,  .drain,    .verify, .verify]),
        (.verify,  false, [.drain,  .drain,  .drain,    .drain,     .drain,  .drain,    .verify, .verify]),
        (.verify,  true,  [.restore, .restore, .restore, .restore,  .restore, .restore, .restore, .restore]),
        (.restore, false, [.restore, .restore, .restore, .restore,  .restore, .restore, .restore, .restore]),
        (.restore, true,  [.restore, .restore, .restore, .restore,  .restore, .restore, .restore, .restore]),
    ]

    @Test func everyInterruptedPhaseAgainstEveryLoadBalancerState() {
        #expect(Set(Self.table.map { "\($0.0) \($0.1)" }).count == Phase.allCases.count * 2, "every phase, finished or not")
        for (phase, succeeded, expected) in Self.table {
            for ((name, observation), point) in zip(Self.states, expected) {
                #expect(ResumeDecision.decide(last: (phase, succeeded), observation: observation) == point,
                        "\(phase.rawValue) \(succeeded ? "succeeded" : "interrupted"), load balancer says \(name)")
            }
        }
    }

    @Test func aTargetTheRunNeverTouchedStartsFromTheStart() {
        for (_, observation) in Self.states {
            #expect(ResumeDecision.decide(last: nil, observation: observation) == .start)
        }
    }

    @Test func aHookNeverRunsOnATargetThatCouldServe() {
        for (phase, succeeded, _) in Self.table {
            for (name, observation) in Self.states where !Waiter.Rule.drained.isMet(by: observation) {
                let point = ResumeDecision.decide(last: (phase, succeeded), observation: observation)
                #expect(point != .deploy && point != .verify, "\(phase.rawValue) with the target \(name)")
            }
        }
    }
}
