@testable import Configuration
@testable import HTTPAPI
@testable import WireFormat
import Foundation
import Testing
import Dispatch
import MicroHTTP
import HTTPTesting
@testable import RollgateServer

/// Identical requests with one Idempotency-Key sent at the same moment: the key is checked
/// and the run inserted in one transaction, so every one of them gets the same run (the loser
/// of the race used to get 422 `idempotency_key_reused`).
@Suite(.serialized) struct IdempotencyRaceTests {
    let directory = TempDirectory()

    /// The loser's path, made certain: its pre-check found nothing (the winner had not
    /// committed), so it reaches the store's insert with the key the winner just used.
    @Test func theLoserOfTheRaceGetsTheWinnersRun() async throws {
        var config = Config(database: directory.path + "/race.db", apiTokens: [APIToken(name: "ci", secret: "race-token-0123456789")],
                            services: [quickService("web")])
        config.publicRead = true
        let app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                          environment: [:], logger: .quiet)
        let winner = try await app.api.enqueueDeploy(service: "web", version: "v1", reason: "r", requestedBy: "api:ci", key: "api:ci:k", waitForLock: false)
        let loser = try await app.api.enqueueDeploy(service: "web", version: "v1", reason: "r", requestedBy: "api:ci", key: "api:ci:k", waitForLock: false)
        #expect(!winner.replayed && loser.replayed && loser.run.id == winner.run.id)
        await #expect(throws: API.Refusal.self, "the key with another body is still a conflict") {
            _ = try await app.api.enqueueDeploy(service: "web", version: "v2", reason: "r", requestedBy: "api:ci", key: "api:ci:k", waitForLock: false)
        }
        #expect(try app.store.runs(.init()).count == 1)
    }

    /// The same over the wire, 20 requests on their own connections at once (whether they
    /// overlap depends on the machine; when they do, none may lose).
    @Test func twentyIdenticalRequestsAtOnceGetOneRun() async throws {
        let doors = try await OpenDoors(directory)
        defer { doors.stop() }
        let client = doors.client
        let auth = doors.auth
        let body = Array(#"{"service":"web","version":"v7","reason":"race"}"#.utf8)
        let answers = try await offPool { () -> [(Int, Int64?)] in
            let results = CollectedAnswers()
            DispatchQueue.concurrentPerform(iterations: 20) { index in
                var source = client
                source.source = "127.0.3.\(index + 1)"
                let response = try? source.send("POST", "/api/v1/deploys", headers: [auth, ("Idempotency-Key", "race-1")], body: body)
                results.append((response?.status ?? 0, response.flatMap { json($0)["id"]?.int }))
            }
            return results.values
        }
        #expect(answers.count == 20)
        #expect(answers.allSatisfy { $0.0 == 202 }, "every request is answered with the run: \(answers.map(\.0))")
        #expect(Set(answers.compactMap(\.1)).count == 1, "one run for all of them: \(answers.map(\.1))")
        #expect(try await doors.runs().count == 1)
    }
}

/// Results collected from concurrentPerform's threads.
final class CollectedAnswers: @unchecked Sendable {
    // @unchecked: `items` is only touched under `lock`.
    private let lock = NSLock()
    private var items: [(Int, Int64?)] = []
    func append(_ item: (Int, Int64?)) { lock.lock(); items.append(item); lock.unlock() }
    var values: [(Int, Int64?)] { lock.lock(); defer { lock.unlock() }; return items }
}
