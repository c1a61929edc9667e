import Foundation
import Testing
import Rollout
import SQLiteStore
@testable import SQLStore

/// `rollgate plan`'s arithmetic against cases worked out by hand.
@Suite struct RollForecastTests {
    /// An ALB's defaults: 300 s deregistration delay, a check every 30 s, 5 to be healthy.
    let albDefaults = GroupTiming(deregistrationDelay: .seconds(300), healthCheckInterval: .seconds(30),
                                  healthCheckTimeout: .seconds(5), healthyThreshold: 5)

    func plan(maxUnavailable: MaxUnavailable = .count(1)) -> ServicePlan {
        var plan = ServicePlan(name: "web", pollInterval: .seconds(1), hooks: HookCommands(deploy: "./deploy.sh"))
        plan.maxUnavailable = maxUnavailable
        return plan
    }

    func seconds(_ values: [Double]) -> [Duration] { values.map { .seconds($0) } }

    @Test func albDefaultsWithoutHistory() {
        let forecast = RollForecast(plan: plan(), timing: albDefaults, targets: 4, history: [:])
        // 300 s drain + unknown hooks (0) + 5 x 30 s health = 450 s a target; 4 batches of one.
        #expect(forecast.parts.map(\.expected) == [.seconds(300), .zero, .seconds(150)])
        #expect(forecast.parts.map(\.known) == [true, false, true])
        #expect(forecast.perTarget == .seconds(450))
        #expect(forecast.boundBy == .drain)
        #expect(forecast.batches == 4)
        #expect(forecast.total == .seconds(1800))
        // Fast drain: 300 - (10 s quiet + 1 s poll) = 289 s a target, 4 x 289 on the roll.
        // Health: 150 - 5 x 2 = 140 s a target. Two at a time: 2 batches instead of 4, half.
        #expect(forecast.advice.map(\.change) == [.fastDrain, .healthCheck, .maxUnavailable])
        #expect(forecast.advice.map(\.savesPerTarget) == [.seconds(289), .seconds(140), .zero])
        #expect(forecast.advice.map(\.savesOnRoll) == [.seconds(1156), .seconds(560), .seconds(900)])
        #expect(forecast.advice.map(\.text) == [
            "fast drain (quiet 10 s): −4 min 49 s per target (if the app is idle during drains; measure with fast_drain.measure_only)",
            "health check interval 5 s, healthy threshold 2 during the roll: −2 min 20 s per target",
            "max_unavailable 2: −50% (15 min on the roll)",
        ])
        let summary = forecast.summary(service: "web")
        #expect(summary.first == "web: 4 targets, 1 at a time (4 batches)")
        #expect(summary.contains("  out of service per target: about 7 min 30 s, bound by the drain (hooks not counted: unknown)"))
        #expect(summary.contains("    hooks  ?           unknown until the service has rolled 3 targets"), "\(summary)")
        #expect(summary.contains("  whole roll: about 30 min"))
    }

    @Test func measuredPhasesReplaceTheModelOnceThereAreEnough() {
        let history: [Phase: PhaseTimes] = [
            .prepare: PhaseTimes(seconds([2, 2, 4]))!,
            .drain: PhaseTimes(seconds([40, 10, 30, 20, 50, 60, 70, 80, 90, 100]))!,
            .deploy: PhaseTimes(seconds([20, 25, 30]))!,
            .verify: PhaseTimes(seconds([5, 5, 5]))!,
            .restore: PhaseTimes(seconds([61, 62]))!,   // two: not enough, the model stays
        ]
        // Nearest rank: the 5th and 9th of ten.
        #expect(history[.drain] == PhaseTimes(p50: .seconds(50), p90: .seconds(90), samples: 10))
        let forecast = RollForecast(plan: plan(), timing: albDefaults, targets: 3, history: history)
        #expect(forecast.parts.map(\.expected) == [.seconds(50), .seconds(30), .seconds(150)])
        #expect(forecast.parts[0].from == "median of 10 drains (p90 1 min 30 s)")
        #expect(forecast.boundBy == .health)
        #expect(forecast.prepare == .seconds(2))
        // (2 s prepare + 230 s out) x 3 batches.
        #expect(forecast.total == .seconds(696))
        // Fast drain saves what the measured drain takes over 11 s: 39 s.
        #expect(forecast.advice.first?.savesPerTarget == .seconds(39))
        // Two at a time with 3 targets: 2 batches instead of 3, a third.
        #expect(forecast.advice.last?.text == "max_unavailable 2: −33% (3 min 52 s on the roll)")
    }

    @Test func fastDrainCanaryAndBatchesShapeTheRoll() {
        var canaryPlan = plan(maxUnavailable: .count(2))
        canaryPlan.fastDrain = FastDrain(check: "./idle.sh", quiet: .seconds(15))
        canaryPlan.canary = Canary(targets: 1, bake: .seconds(600))
        let tight = GroupTiming(deregistrationDelay: .seconds(300), healthCheckInterval: .seconds(5), healthCheckTimeout: .seconds(2),
                                healthyThreshold: 2, slowStart: .seconds(30))
        let forecast = RollForecast(plan: canaryPlan, timing: tight, targets: 5, history: [:])
        // 15 s quiet + 1 s poll; 10 s health. A canary of 1, then 4 in batches of 2: 3 batches.
        #expect(forecast.parts.map(\.expected) == [.seconds(16), .zero, .seconds(10)])
        #expect(forecast.batches == 3)
        #expect(forecast.total == .seconds(26 * 3 + 600))
        #expect(forecast.slowStart == .seconds(30))
        // Already fast: nothing to advise (a canary's batches are its own choice).
        #expect(forecast.advice.isEmpty)
        let summary = forecast.summary(service: "api")
        #expect(summary.contains("  whole roll: about 11 min 18 s, with the canary's bake of 10 min"), "\(summary)")
        #expect(summary.contains("  nothing in rollgate's reach would make it faster"))
        #expect(summary.contains { $0.hasPrefix("  slow start 30 s") })
    }

    @Test func aDelayShorterThanTheQuietBoundsAFastDrainAndPercentBatchesRoundDown() {
        var fast = plan(maxUnavailable: .percent(50))
        fast.fastDrain = FastDrain(check: "./idle.sh", quiet: .seconds(30))
        let forecast = RollForecast(plan: fast, timing: GroupTiming(deregistrationDelay: .seconds(20)), targets: 5, history: [:])
        #expect(forecast.parts[0].expected == .seconds(20))
        #expect(forecast.parts[2].known == false, "no health check settings: unknown, not zero passed off as known")
        #expect(forecast.batchSize == 2 && forecast.batches == 3)
        #expect(RollForecast(plan: plan(), timing: albDefaults, targets: 0, history: [:]).total == .zero)
    }

    /// A measured idle share prices fast drain: 300 s drains idle 90% of the time save
    /// 270 - 10 - 1 = 259 s a target; drains idle 3% save nothing, so nothing is advised. Fewer
    /// than three measured drains are not enough to say.
    @Test func theMeasuredIdleShareOfDrainsPricesFastDrain() throws {
        let idle = try #require(IdleShare([0.9, 0.95, 0.85, 0.9, 0.7]))
        #expect(idle.median == 0.9 && idle.drains == 5 && idle.percent == 90)
        let forecast = RollForecast(plan: plan(), timing: albDefaults, targets: 2, history: [:], idle: idle)
        let fast = try #require(forecast.advice.first)
        #expect(fast.change == .fastDrain)
        #expect(fast.savesPerTarget == .seconds(259))
        #expect(fast.text == "fast drain (quiet 10 s): −4 min 19 s per target (drains idle 90% of their time, 5 measured)")
        let busy = RollForecast(plan: plan(), timing: albDefaults, targets: 2, history: [:], idle: IdleShare([0.03, 0.02, 0.04]))
        #expect(!busy.advice.contains { $0.change == .fastDrain })
        let few = RollForecast(plan: plan(), timing: albDefaults, targets: 2, history: [:], idle: IdleShare([0.1, 0.1]))
        #expect(few.idle == nil)
        #expect(few.advice.first?.savesPerTarget == .seconds(289), "unmeasured: priced as if idle")
        #expect(IdleShare([]) == nil)
        #expect(abs((IdleShare([0.2, 0.4])?.median ?? 0) - 0.3) < 1e-9, "the mean of the middle two")
    }

    @Test func aTightenedHealthCheckIsForecastAndNotAdvisedAgain() {
        var tight = plan()
        tight.healthCheckDuringRoll = HealthCheckTightening(interval: .seconds(5), healthyThreshold: 3)
        let forecast = RollForecast(plan: tight, timing: albDefaults, targets: 2, history: [:])
        #expect(forecast.parts[2].expected == .seconds(15))
        #expect(forecast.parts[2].from == "health_check_during_roll: 3 checks 5 s apart")
        #expect(!forecast.advice.contains { $0.change == .healthCheck })
    }

    @Test func durationsAreSpokenAsAPersonWouldSayThem() {
        #expect(Duration.milliseconds(800).spoken == "800 ms")
        #expect(Duration.seconds(45).spoken == "45 s")
        #expect(Duration.seconds(260).spoken == "4 min 20 s")
        #expect(Duration.seconds(300).spoken == "5 min")
        #expect(Duration.seconds(3900).spoken == "1 h 5 min")
        #expect(Duration.seconds(7200).spoken == "2 h")
    }

    /// The history the forecast reads, on the real store: the service's last 20 succeeded
    /// runs, their succeeded steps only.
    @Test func theStoreGivesEachPhasesTimesOverTheLastSucceededRuns() throws {
        let store = try Store.forTests()
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        func run(_ id: RunID, _ service: String, _ status: RunStatus, _ steps: [(Phase, StepStatus, Double)]) throws {
            var at = t0.addingTimeInterval(Double(id) * 3600)
            var made: [Step] = []
            for (index, (phase, stepStatus, seconds)) in steps.enumerated() {
                made.append(Step(id: id * 100 + Int64(index), runID: id, targetID: "i-\(index)", targetPort: 80, phase: phase, status: stepStatus,
                                 startedAt: at, finishedAt: at.addingTimeInterval(seconds), error: stepStatus == .failed ? "hook failed" : nil))
                at = at.addingTimeInterval(seconds)
            }
            try store.insert(Run(id: id, service: service, version: "v\(id)", status: status, createdAt: at, startedAt: at, finishedAt: at,
                                 error: status == .failed ? "deploy hook failed" : nil, steps: made))
        }
        for id in 1...21 {
            try run(Int64(id), "web", .succeeded, [(.drain, .succeeded, Double(id)), (.deploy, .succeeded, 5), (.restore, .succeeded, 3)])
        }
        try run(22, "web", .failed, [(.drain, .succeeded, 500), (.deploy, .failed, 500)])
        try run(23, "api", .succeeded, [(.drain, .succeeded, 7)])
        let times = try store.phaseTimes(service: "web")
        // Runs 2...21: drains of 2...21 s; the median is the 10th, the 90th percentile the 18th.
        #expect(times[.drain] == PhaseTimes(p50: .seconds(11), p90: .seconds(19), samples: 20))
        #expect(times[.deploy] == PhaseTimes(p50: .seconds(5), p90: .seconds(5), samples: 20))
        #expect(times[.restore]?.samples == 20)
        #expect(times[.prepare] == nil)
        #expect(try store.phaseTimes(service: "api")[.drain] == PhaseTimes(p50: .seconds(7), p90: .seconds(7), samples: 1))
        #expect(try store.phaseTimes(service: "nobody").isEmpty)
    }
}
