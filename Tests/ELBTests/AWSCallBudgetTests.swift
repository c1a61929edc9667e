import Testing
import ELB
import Rollout
import RolloutTesting
import MetricsTestKit
import Synchronization

/// rollgate's share of the account's ELB API limit, on the injected clock.
@Suite struct AWSCallBudgetTests {
    let clock = ManualClock()

    @Test func callsGoAtOnceUpToASecondsWorthThenWaitTheirTurnInOrder() async {
        let budget = AWSCallBudget(rates: .init(describePerSecond: 4, changesPerSecond: 2), clock: clock)
        var waits: [Duration] = []
        for _ in 0..<8 { waits.append(await budget.reserve(.describe)) }
        #expect(waits == [.zero, .zero, .zero, .zero, .milliseconds(250), .milliseconds(500), .milliseconds(750), .seconds(1)],
                "a second's worth at once, then one every 1/rate, first come first served")
        #expect(await budget.reserve(.change) == .zero, "changes have a bucket of their own")
        clock.advance(by: .seconds(2))
        #expect(await budget.reserve(.describe) == .zero, "the refill paid the waiting calls back")
        #expect(AWSCallBudget.Kind.of(action: "DescribeTargetHealth") == .describe)
        #expect(AWSCallBudget.Kind.of(action: "DeregisterTargets") == .change && AWSCallBudget.Kind.of(action: "ModifyTargetGroup") == .change)
    }

    /// Replicas on one database spend one account's limit: each takes its share of the rates.
    @Test func replicasSplitTheBudgetAndTakeItBackWhenOthersLeave() async {
        let budget = AWSCallBudget(rates: .init(describePerSecond: 4, changesPerSecond: 2), clock: clock)
        await budget.share(0.5)
        let (describe, change) = (await budget.rate(.describe), await budget.rate(.change))
        #expect(describe == 2 && change == 1)
        var waits: [Duration] = []
        for _ in 0..<4 { waits.append(await budget.reserve(.describe)) }
        #expect(waits == [.zero, .zero, .milliseconds(500), .seconds(1)], "two a second now, not four: \(waits)")
        // Throttling halves this replica's share, never below an eighth of it.
        for _ in 0..<6 { await budget.throttled(.describe) }
        #expect(await budget.rate(.describe) == 0.25)
        // The other replica stops: the share grows back on successes, up to the whole rate.
        await budget.share(1)
        #expect(await budget.rate(.describe) == 0.25, "no jump: it creeps back as calls succeed")
        for _ in 0..<30 { await budget.succeeded(.describe) }
        #expect(await budget.rate(.describe) == 4)
        // A budget made while this replica has a third starts at a third.
        let budgets = AWSCallBudgets(rates: .init(describePerSecond: 3), clock: clock)
        await budgets.share(1.0 / 3)
        let third = await budgets.budget(region: "eu-west-1").rate(.describe)
        #expect(abs(third - 1) < 1e-9 && abs(budgets.share - 1.0 / 3) < 1e-9)
        await budgets.share(0)
        #expect(budgets.share == 0.01, "never nothing: a replica always may call")
        await budgets.share(.nan)
        #expect(budgets.share == 1)
    }

    @Test func throttlingHalvesTheRateDownToAnEighthAndSuccessesBringItBack() async {
        let budget = AWSCallBudget(rates: .init(describePerSecond: 4), clock: clock)
        await budget.throttled(.describe)
        #expect(await budget.rate(.describe) == 2)
        for _ in 0..<5 { await budget.throttled(.describe) }
        #expect(await budget.rate(.describe) == 0.5, "never below an eighth of the configured rate")
        #expect(await budget.throttledCount(.describe) == 6)
        for _ in 0..<30 { await budget.succeeded(.describe) }
        #expect(await budget.rate(.describe) == 4, "back to the configured rate, never above it")
    }

    /// Many waits on one budget while ELB answers Throttling to every third call: no call
    /// fails, each is served, the calls are spaced by the budget, and the rate recovers.
    @Test func manyWaitsThroughThrottlingAllSucceedAndTheRateRecovers() async throws {
        let budget = AWSCallBudget(rates: .init(describePerSecond: 4), clock: clock)
        var answers: [(Int, [UInt8])] = []
        for _ in 0..<20 { answers += [throttled, try capturedAnswer("008-DescribeTargetHealth.http"), try capturedAnswer("008-DescribeTargetHealth.http")] }
        let transport = ScriptedTransport(answers)
        let metrics = TestMetrics()
        let client = ELBv2Client(endpoint: AWSEndpoint(url: "http://127.0.0.1:45124")!, region: "us-east-1", credentials: FixedCredentials(),
                                 transport: transport, clock: clock, retry: RetryPolicy(attempts: 2), random: { 1.0 },
                                 metrics: RollMetrics(factory: metrics), budget: budget)
        for _ in 0..<40 {
            // Every poll answers, though a third of the attempts were throttled and retry.attempts is 2.
            _ = try await client.describeTargetHealth(targetGroupARN: arn)
        }
        #expect(transport.sent.count == 60)
        #expect(await budget.throttledCount(.describe) == 20)
        #expect(clock.sleeps.reduce(.zero, +) >= .seconds(10), "the budget spaced the calls: \(clock.sleeps.reduce(.zero, +))")
        for _ in 0..<20 { await budget.succeeded(.describe) }
        #expect(await budget.rate(.describe) == 4, "and it recovers")
        let waited = try metrics.expectTimer("rollgate_aws_budget_wait_seconds", [("kind", "describe")])
        #expect(!waited.values.isEmpty)
    }

    /// DescribeInstances (for ROLLGATE_TARGET_HOST) has a budget of its own: throttled three
    /// times with `attempts: 2`, it still answers (seen: 23 of 100 runs failed on it when it
    /// had none); and an instance's address is asked once.
    @Test func anInstancesAddressOutlastsThrottlingAndIsAskedOnce() async throws {
        let budgets = AWSCallBudgets(rates: .init(describePerSecond: 4), clock: clock)
        #expect(budgets.budget(region: "us-east-1", api: "ec2") !== budgets.budget(region: "us-east-1"), "EC2 throttles apart from ELB")
        let answer = Array("""
            <DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceId>i-0abc</instanceId>
            <privateIpAddress>10.0.1.4</privateIpAddress></item></instancesSet></item></reservationSet></DescribeInstancesResponse>
            """.utf8)
        let transport = ScriptedTransport([throttled, throttled, throttled, (200, answer)])
        let ec2 = EC2Client(endpoint: AWSEndpoint(url: "http://127.0.0.1:45124")!, region: "us-east-1", credentials: FixedCredentials(),
                            transport: transport, clock: clock, retry: RetryPolicy(attempts: 2), random: { 1.0 },
                            budget: budgets.budget(region: "us-east-1", api: "ec2"))
        #expect(try await ec2.privateAddress(ofInstance: "i-0abc") == "10.0.1.4")
        #expect(try await ec2.privateAddress(ofInstance: "i-0abc") == "10.0.1.4")
        #expect(transport.sent.count == 4, "three throttled, one answered, then remembered")
    }

    /// check-config must answer fast: there Throttling counts as an attempt.
    @Test func aCallerThatMustAnswerFastGivesUpOnThrottling() async throws {
        let budget = AWSCallBudget(rates: .init(describePerSecond: 4), clock: clock)
        let transport = ScriptedTransport([throttled, throttled, throttled])
        let client = ELBv2Client(endpoint: AWSEndpoint(url: "http://127.0.0.1:45124")!, region: "us-east-1", credentials: FixedCredentials(),
                                 transport: transport, clock: clock, retry: RetryPolicy(attempts: 2, outlastsThrottling: false),
                                 random: { 1.0 }, budget: budget)
        await #expect(throws: AWSError.self) { _ = try await client.describeTargetHealth(targetGroupARN: arn) }
        #expect(transport.sent.count == 2)
    }
}

/// The first answer waits until the test opens the gate; the rest answer at once.
final class GatedTransport: AWSTransport {
    let gate = AsyncStream<Void>.makeStream()
    let inner: ScriptedTransport
    private let first = Synchronization.Mutex(true)
    init(_ inner: ScriptedTransport) { self.inner = inner }

    func post(_ endpoint: AWSEndpoint, headers: [(String, String)], body: [UInt8], timeout: Duration) async throws -> (status: Int, body: [UInt8]) {
        let answer = try await inner.post(endpoint, headers: headers, body: body, timeout: timeout)
        if first.withLock({ let was = $0; $0 = false; return was }) { for await _ in gate.stream { break } }
        return answer
    }
}

func healthAnswer(_ targets: [(String, String)]) -> (Int, [UInt8]) {
    let members = targets.map { "<member><Target><Id>\($0.0)</Id><Port>80</Port></Target><TargetHealth><State>\($0.1)</State></TargetHealth></member>" }
    return (200, Array("<DescribeTargetHealthResponse><DescribeTargetHealthResult><TargetHealthDescriptions>\(members.joined())</TargetHealthDescriptions></DescribeTargetHealthResult></DescribeTargetHealthResponse>".utf8))
}

@Suite struct HealthPollTests {
    /// Polls of one group that wait while a call is on its way go together in the next call.
    @Test func pollsAskedWhileACallIsOnItsWayShareTheNextCall() async throws {
        let scripted = ScriptedTransport([healthAnswer([("i-1", "draining")]),
                                          healthAnswer([("i-1", "draining"), ("i-2", "healthy"), ("i-3", "unused")])])
        let transport = GatedTransport(scripted)
        let client = ELBv2Client(endpoint: AWSEndpoint(url: "http://127.0.0.1:45124")!, region: "us-east-1", credentials: FixedCredentials(),
                                 transport: transport, clock: ManualClock(), random: { 1.0 })
        let lb = ELBLoadBalancer(client: client, targetGroupARN: arn)
        let first = Task { try await lb.health(of: Target(id: "i-1", port: 80)) }
        while scripted.sent.isEmpty { await Task.yield() }   // the first call is on its way
        let others = (1...3).map { n in Task { try await lb.health(of: Target(id: "i-\(n)", port: 80)) } }
        for _ in 0..<200 { await Task.yield() }              // they wait behind it
        #expect(scripted.sent.count == 1, "no second call while the first is on its way")
        transport.gate.continuation.finish()
        #expect(try await first.value == .health(TargetHealth(.draining)))
        var answers: [TargetObservation] = []
        for task in others { answers.append(try await task.value) }
        #expect(answers == [.health(TargetHealth(.draining)), .health(TargetHealth(.healthy)), .health(TargetHealth(.unused))])
        #expect(scripted.sent.count == 2, "three polls, one call")
        let second = scripted.sent[1].body
        #expect(["i-1", "i-2", "i-3"].allSatisfy { second.contains("Id=\($0)&") } && second.contains("Targets.member.3.Id="), "\(second)")
    }
}
