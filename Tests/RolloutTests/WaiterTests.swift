import Testing
import Rollout
import RolloutTesting

@Suite struct WaiterTests {
    let target = Target(id: "i-1", port: 80)
    let draining = TargetObservation.health(TargetHealth(.draining, reason: "Target.DeregistrationInProgress"))
    let unused = TargetObservation.health(TargetHealth(.unused, reason: "Target.NotRegistered"))

    func deregistered(_ script: [TargetObservation], failure: @escaping @Sendable (FakeLoadBalancer.Call) -> LoadBalancerError? = { _ in nil }) async throws -> FakeLoadBalancer {
        let lb = FakeLoadBalancer(targets: [target], drainScript: { _ in script }, failure: failure)
        try await lb.deregister(target)
        return lb
    }

    @Test func pollsEveryIntervalAndStopsTheMomentTheRuleHolds() async throws {
        let clock = ManualClock()
        let lb = try await deregistered([draining, draining, draining, unused])
        var seen: [TargetObservation] = []
        let outcome = try await Waiter(clock: clock, pollInterval: .seconds(1), timeout: .seconds(60))
            .wait(for: target, until: .drained, on: lb) { if case .success(let o) = $0 { seen.append(o) } }
        #expect(outcome == .met(unused, after: .seconds(3)))
        #expect(clock.sleeps == [.seconds(1), .seconds(1), .seconds(1)])
        #expect(seen == [draining, draining, draining, unused])
        #expect(lb.calls.filter { $0 == .health("i-1") }.count == 4)
    }

    @Test func invalidTargetCountsAsDrainedLikeTheAWSWaiter() async throws {
        let clock = ManualClock()
        let lb = try await deregistered([draining, .notFound])
        let outcome = try await Waiter(clock: clock, pollInterval: .milliseconds(500), timeout: .seconds(10))
            .wait(for: target, until: .drained, on: lb)
        #expect(outcome == .met(.notFound, after: .milliseconds(500)))
    }

    @Test func timesOutAtTheTimeoutNotAtAFixedNumberOfTries() async throws {
        let clock = ManualClock()
        let lb = try await deregistered([draining])
        let outcome = try await Waiter(clock: clock, pollInterval: .seconds(2), timeout: .seconds(5))
            .wait(for: target, until: .drained, on: lb)
        #expect(outcome == .timedOut(last: draining))
        // Polls at 0, 2, 4 and a last one at exactly 5 s: the final sleep is cut to the time left.
        #expect(clock.sleeps == [.seconds(2), .seconds(2), .seconds(1)])
        #expect(lb.calls.filter { $0 == .health("i-1") }.count == 4)
    }

    @Test func inServiceNeedsHealthyAndNeverAcceptsNotFound() async throws {
        #expect(Waiter.Rule.inService.isMet(by: .health(TargetHealth(.healthy))))
        #expect(!Waiter.Rule.inService.isMet(by: .notFound))
        for state in TargetState.allCases where state != .healthy {
            #expect(!Waiter.Rule.inService.isMet(by: .health(TargetHealth(state))), "\(state)")
        }
        for state in TargetState.allCases where state != .unused {
            #expect(!Waiter.Rule.drained.isMet(by: .health(TargetHealth(state))), "\(state)")
        }
    }

    @Test func throttledPollsAreRetriedNotFatal() async throws {
        let clock = ManualClock()
        let throttled = Counter()
        let lb = try await deregistered([draining, unused]) { call in
            guard case .health = call, throttled.next() < 2 else { return nil }
            return LoadBalancerError(code: "Throttling", message: "Rate exceeded", isRetryable: true)
        }
        var failures = 0
        let outcome = try await Waiter(clock: clock, pollInterval: .seconds(1), timeout: .seconds(30))
            .wait(for: target, until: .drained, on: lb) { if case .failure = $0 { failures += 1 } }
        #expect(failures == 2)
        #expect(outcome == .met(unused, after: .seconds(3)))
    }

    @Test func errorsThatWillNotHealAreThrown() async throws {
        let clock = ManualClock()
        let lb = try await deregistered([draining]) { call in
            if case .health = call { return LoadBalancerError(code: "SignatureDoesNotMatch", message: "bad secret") }
            return nil
        }
        await #expect(throws: LoadBalancerError(code: "SignatureDoesNotMatch", message: "bad secret")) {
            _ = try await Waiter(clock: clock, pollInterval: .seconds(1), timeout: .seconds(30)).wait(for: target, until: .drained, on: lb)
        }
        #expect(clock.sleeps.isEmpty)
    }

    @Test func cancellationEndsTheWait() async throws {
        let clock = ManualClock()
        let lb = try await deregistered([draining])
        let start = clock.now
        // The callback runs inside the waiting task: cancel it 5 s into the wait.
        clock.whenSleeping { now in
            if now.since(start) >= .seconds(5) { withUnsafeCurrentTask { $0?.cancel() } }
        }
        let task = Task {
            try await Waiter(clock: clock, pollInterval: .seconds(1), timeout: .seconds(3600)).wait(for: target, until: .drained, on: lb)
        }
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        #expect(clock.sleeps.count == 5)
        #expect(lb.calls.filter { $0 == .health("i-1") }.count == 5)
    }
}

/// Counts calls across tasks.
final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> Int { value.withLock { v in defer { v += 1 }; return v } }
}

import Synchronization
