import Testing
import Logging
import Rollout
import RolloutTesting
@testable import SQLiteStore
import PostgresStore
@testable import SQLStore

/// Batches rolled against the real store (the memory fake once let them pass while SQLite
/// ran them one at a time): `max_unavailable` targets are out at once at some moment, never
/// more, and a write the schema refuses stops the run instead of being retried forever.
@Suite struct BatchOnStoreTests {
    let db = TempDatabase()
    let clock = ManualClock()
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func roll(_ engine: Engine, size: Int, targets count: Int) async throws -> (Roll.Outcome, TrafficModel, Run) {
        let store = try makeStore(engine, db)
        let targets = (1...count).map { Target(id: "i-\($0)", port: 80) }
        let model = TrafficModel(targets: targets, clock: clock)
        var plan = ServicePlan(name: "web", pollInterval: .seconds(1), drainTimeout: .seconds(400), healthyTimeout: .seconds(60),
                               hookTimeout: .seconds(60), hooks: HookCommands(deploy: "deploy.sh"))
        plan.maxUnavailable = .count(size)
        plan.fastDrain = FastDrain(check: "quiet-check", quiet: .seconds(10))
        _ = try store.enqueue(service: "web", version: "v2", reason: nil, requestedBy: "test", idempotencyKey: nil, at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        let outcome = await Roll(run: run, plan: plan, loadBalancer: model, executor: TrafficModelExecutor(model: model, clock: clock),
                                 journal: store, clock: clock, logger: Self.quiet).perform()
        return (outcome, model, try #require(try store.run(run.id)))
    }

    @Test(arguments: Engine.allCases, [2, 4])
    func aBatchsTargetsAreOutTogetherOnTheRealStore(_ engine: Engine, size: Int) async throws {
        let (outcome, model, run) = try await roll(engine, size: size, targets: 8)
        #expect(outcome == .succeeded, "\(outcome)")
        #expect(model.maxOutOfService == size, "exactly \(size) out at once at some moment, never more: \(model.maxOutOfService)")
        #expect(model.droppedRequests == 0)
        // The targets of a batch overlap: each one's drain starts before the other's restore ends.
        let outages = run.outages
        for batch in stride(from: 0, to: 8, by: size) {
            let together = outages[batch..<batch + size]
            let lastIn = together.map(\.from).max()!
            let firstBack = together.compactMap(\.until).min()!
            #expect(lastIn < firstBack, "batch at \(batch): every target was out before the first came back")
        }
        for target in (1...8).map({ "i-\($0)" }) {
            #expect(run.steps.filter { $0.targetID == target }.map(\.phase) == [.drain, .deploy, .restore], "\(target)")
        }
    }

    @Test(arguments: Engine.allCases) func theRunningStepRuleIsPerTarget(_ engine: Engine) throws {
        let store = try makeStore(engine, db)
        _ = try store.enqueue(service: "web", version: "v2", reason: nil, requestedBy: "test", idempotencyKey: nil, at: clock.now)
        let run = try #require(try store.claimNext(at: clock.now))
        _ = try store.beginStep(run: run.id, target: Target(id: "i-1", port: 80), phase: .drain, at: clock.now)
        _ = try store.beginStep(run: run.id, target: Target(id: "i-2", port: 80), phase: .drain, at: clock.now)
        // One target never has two steps running.
        #expect { _ = try store.beginStep(run: run.id, target: Target(id: "i-1", port: 80), phase: .deploy, at: clock.now) } throws: { error in
            (error as? any StoreFault)?.isUniqueViolation == true && (error as? any StoreFault)?.mayPassLater == false
        }
    }

    @Test func aWriteTheSchemaRefusesStopsInsteadOfRetryingForever() async throws {
        let health = StoreHealth()
        let durable = DurableWrite(clock: clock, health: health)
        var attempts = 0
        await #expect(throws: StoreRefusedWrite.self) {
            try await durable.perform("a constraint violation") {
                attempts += 1
                throw SQLiteError(code: 2067, message: "UNIQUE constraint failed: steps.run_id", sql: nil)   // SQLITE_CONSTRAINT_UNIQUE
            }
        }
        #expect(attempts == 1)
        await #expect(throws: StoreRefusedWrite.self) {
            try await durable.perform("a constraint violation on PostgreSQL") {
                throw PostgresError(sqlState: "23505", message: "duplicate key value violates unique constraint")
            }
        }
        var busy = 0
        let value = try await durable.perform("a busy database") {
            busy += 1
            if busy < 3 { throw SQLiteError(code: 5, message: "database is locked", sql: nil) }
            return 42
        }
        #expect(value == 42 && busy == 3, "busy is retried until it passes")
        var lost = 0
        let after = try await durable.perform("a connection lost, then a serialization failure") {
            lost += 1
            if lost == 1 { throw PostgresError(sqlState: "08006", message: "server closed the connection unexpectedly") }
            if lost == 2 { throw PostgresError(sqlState: "40001", message: "could not serialize access") }
            return 7
        }
        #expect(after == 7 && lost == 3, "PostgreSQL's passing faults are retried too")
    }
}
