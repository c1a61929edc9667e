import Foundation
import Testing
import Rollout
import RolloutTesting
@testable import SQLiteStore
@testable import SQLStore

/// Every operation of the store that the API, the page, the notifier and the roll use, once
/// each on both engines, answering the same: a statement that one engine cannot run (a
/// parameter whose type PostgreSQL cannot tell, SQLite-only syntax) fails here, not in a
/// replica's API.
@Suite struct EveryOperationTests {
    let db = TempDatabase()
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
    let web1 = Target(id: "web-1", port: 80), web2 = Target(id: "web-2", port: 80)

    @Test(arguments: Engine.allCases) func everyOperationAnswersTheSameOnEitherEngine(_ engine: Engine) throws {
        let store = try makeStore(engine, db, leaseClock: clock, replica: "r1")
        // A deploy that fails on web-1 (left out), a succeeded one, a rollback's marks, a bake.
        _ = try store.enqueue(service: "web", version: "v1", reason: "first", requestedBy: "ci", idempotencyKey: "k1", at: t0)
        let first = try #require(try store.claimNext(owner: .test, lease: .seconds(60), at: t0))
        let lease = try #require(first.lease)
        #expect(try store.freezePlan(run: first.id, targets: [web1, web2]).map(\.target) == [web1, web2])
        let step = try store.beginStep(run: first.id, target: web1, phase: .drain, at: t0)
        try store.noteQuiet(step, quiet: .seconds(2))
        try store.endStep(step, .succeed, error: nil, at: t0.addingTimeInterval(4))
        try store.markOut(run: first.id, service: "web", target: web1, phase: .drain, reason: "run 1", lease: lease, at: t0)
        try store.noteLeftOut(service: "web", target: web1, run: first.id, phase: .deploy, reason: "hook failed", at: t0)
        try store.noteLeftOut(service: "web", target: web1, run: first.id, phase: .verify, reason: "again", at: t0.addingTimeInterval(1))
        try store.log(run: first.id, stream: .system, target: "web-1", phase: .drain, text: "one", at: t0)
        try store.log(run: first.id, [LogEntry(stream: .stdout, target: "web-1", phase: .deploy, text: "two", at: t0),
                                      LogEntry(stream: .stderr, target: nil, phase: nil, text: "three", at: t0)])
        try store.recordRollback(run: first.id, to: "v0", cause: RunFailure(.hookFailed, "hook failed"), at: t0)
        try store.recordBake(run: first.id, elapsed: .seconds(30))
        #expect(try store.bakeElapsed(of: first.id) == .seconds(30))
        #expect(try store.requestPromote(first.id) && store.isPromoteRequested(first.id))
        try store.recordInterruption(run: first.id, note: "a", at: t0)
        try store.recordInterruption(run: first.id, note: "b", at: t0)
        #expect(try store.interruptions(of: first.id) == ["a", "b"])
        try store.finish(first.id, .fail, error: "deploy hook failed", code: .hookFailed, lease: lease, at: t0.addingTimeInterval(10))
        #expect(try store.run(first.id).map { [$0.error, $0.errorCode?.rawValue] } == ["deploy hook failed", "hook_failed"])

        _ = try store.enqueue(service: "web", version: "v2", reason: nil, requestedBy: "ci", idempotencyKey: nil, at: t0)
        let second = try #require(try store.claimNext(owner: .test, lease: .seconds(60), at: t0))
        let drain = try store.beginStep(run: second.id, target: web2, phase: .drain, at: t0)
        try store.endStep(drain, .succeed, error: nil, at: t0.addingTimeInterval(3))
        try store.markDone(run: second.id, service: "web", target: web1, lease: try #require(second.lease), at: t0)
        try store.finish(second.id, .succeed, error: nil, code: nil, lease: second.lease, at: t0.addingTimeInterval(20))
        _ = try store.enqueue(service: "api", version: "v9", reason: nil, requestedBy: "ci", idempotencyKey: nil, waitForLock: true, at: t0)

        // The API's and the page's reads.
        #expect(try store.runs(RunFilter()).map(\.id) == [3, 2, 1])
        #expect(try store.runs(RunFilter(service: "web", status: .succeeded, limit: 5, before: 3)).map(\.id) == [2])
        #expect(try store.runs(RunFilter(status: .running)).isEmpty)
        #expect(try store.run(idempotencyKey: "k1")?.id == 1)
        let summary = try store.serviceSummary("web")
        #expect(summary.lastGoodVersion == "v2" && summary.running == nil && summary.queued.isEmpty)
        #expect(try store.activeRunCounts().map { "\($0.service) \($0.status.rawValue) \($0.count)" } == ["api queued 1"])
        #expect(try store.leftOutCounts() == [:], "web-1 came back with run 2")
        #expect(try store.leftOut(service: "web").isEmpty)
        #expect(try store.previousGoodVersion(service: "web", before: 3, otherThan: "v9") == "v2")
        #expect(try store.logs(run: first.id, after: 0, limit: 10).map(\.text) == ["one", "two", "three"])
        #expect(try store.logSeq(run: first.id, beforeLast: 1) > 0)
        #expect(try store.phaseTimes(service: "web")[.drain]?.samples == 1)
        #expect(try store.drainIdleShares(service: "web").isEmpty, "the measured drain was run 1's, which failed")
        #expect(try store.plan(of: first.id).count == 2)
        #expect(try store.isCancelRequested(2) == false)

        // Locks, forgetting, health checks changed for a run.
        _ = try store.lock(service: "api", reason: "freeze", by: "alice", expiresAt: t0.addingTimeInterval(60), at: t0)
        #expect(try store.lock(service: "api", at: t0)?.lockedBy == "alice")
        #expect(try store.claimNext(owner: .test, lease: .seconds(60), at: t0) == nil, "api waits for its lock")
        #expect(try store.unlock(service: "api", at: t0)?.reason == "freeze")
        try store.noteLeftOut(service: "api", target: web2, run: 3, phase: .drain, reason: "by hand", at: t0)
        #expect(try store.forget(service: "api", targetID: "web-2", by: "alice", reason: "instance terminated", at: t0)?.target == web2)
        // Who and why, as an event (the engine's CHECK takes the kind) and in the run's log.
        let forgotten = try store.events(after: 0, limit: 500).filter { $0.event == .targetForgotten }
        #expect(forgotten.map { "\($0.runID) \($0.targetID ?? "") \($0.detail ?? "")" } == ["3 web-2 by alice: instance terminated"])
        #expect(try store.logs(run: 3, after: 0, limit: 50).map(\.text).contains("web-2 forgotten by alice: instance terminated; rollgate no longer counts it as left out"))
        let original = HealthCheckSettings(interval: .seconds(30), timeout: .seconds(5), healthyThreshold: 5)
        #expect(try store.noteOriginal(service: "web", targetGroup: "tg", run: 2, settings: original, at: t0) == original)
        #expect(try store.changedHealthChecks().map(\.targetGroup) == ["tg"])
        #expect(try store.serviceSummary("web").changedHealthChecks.count == 1)
        try store.originalPutBack(service: "web", targetGroup: "tg")
        #expect(try store.changedHealthChecks().isEmpty)

        // The event log and the notifier's outbox.
        try store.recordTargetState(service: "web", target: web2, run: nil, state: "healthy", at: t0)
        let events = try store.events(after: 0)
        #expect(!events.isEmpty && events.map(\.seq) == events.map(\.seq).sorted())
        #expect(try store.event(events[0].seq)?.seq == events[0].seq)
        #expect(try store.lastEventSeq() == events.last?.seq)
        try store.queueDeliveries(to: "slack", events, upTo: events.last!.seq, at: t0)
        try store.queueDeliveries(to: "slack", events, upTo: 1, at: t0)
        #expect(try store.cursor(of: "slack") == events.last!.seq, "the cursor never goes back")
        #expect(try store.destinationsWithPending() == ["slack"])
        let next = try #require(try store.nextDelivery(to: "slack", at: t0))
        try store.deliveryFailed(to: "slack", seq: next.event.seq, error: "503", retryAt: t0.addingTimeInterval(5))
        try store.deliveryFailed(to: "slack", seq: next.event.seq, error: "gave up", retryAt: nil)
        try store.delivered(to: "slack", seq: events[1].seq, at: t0)
        #expect(try store.deliveries(of: 1).count >= 2)
        #expect(try store.pendingDeliveryCounts()["slack"] == events.count - 2)
        try store.setReplyTargets(of: 1, replyURL: "https://hooks.slack.com/x", githubDeployment: nil)
        try store.setReplyTargets(of: 1, replyURL: nil, githubDeployment: "o/r/1")
        #expect(try store.replyTargets(of: 1) == ("https://hooks.slack.com/x", "o/r/1"))

        // Replays, simulated targets, retention.
        #expect(try store.firstSight(of: "k", until: t0.addingTimeInterval(60), at: t0))
        #expect(try !store.firstSight(of: "k", until: t0.addingTimeInterval(60), at: t0))
        try store.saveSimulatedTarget(service: "web", SimulatedTarget(target: web1, registered: true, changedAt: t0))
        #expect(try store.simulatedTargets(service: "web").count == 1)
        let pruned = try store.prune(Retention(keepRuns: 1, keepLogs: .seconds(1)), at: t0.addingTimeInterval(3600))
        #expect(pruned.runs == 1 && pruned.logLines == 3, "run 1 goes with its lines: \(pruned)")
    }
}
