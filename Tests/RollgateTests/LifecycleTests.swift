import Foundation
import Testing
import HTTPTesting
@testable import Configuration
@testable import RollgateServer
import Rollout
@testable import SQLStore

/// The server's long-running parts are one service group, stopped in reverse of their start
/// on graceful shutdown: writes are refused first; reads and the page answer while the roll
/// in hand reaches its safe point (its hook finishes within `shutdown_timeout`); the run is
/// left `running` with its lease released for the next start; HTTP stops; and the database
/// is given back last, so another process may claim it at once.
@Suite struct LifecycleTests {
    let directory = TempDirectory()

    @Test func gracefulShutdownStopsThePartsInReverseOfTheirStart() async throws {
        var config = Config(database: directory.path + "/lifecycle.db",
                            services: [quickService("web", targets: 2, deploy: "sleep 1.5; echo deployed")], isDemo: true)
        config.shutdownTimeout = .seconds(10)
        let app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                          environment: ["PATH": "/usr/bin:/bin"], logger: .quiet, listen: ListenAddress(host: "127.0.0.1", port: 0))
        try await app.start()
        let client = HTTPClient(port: app.server.port)
        let id = try await deploy(client, "web", "v2")
        #expect(try await eventually(within: .seconds(20)) {
            let run = json(try await client.request("GET", "/api/v1/runs/\(id)"))
            return run["steps"]?.array?.contains { $0["phase"] == .string("deploy") && $0["status"] == .string("running") } ?? false
        }, "the deploy hook runs")
        let stopping = Task { await app.stop() }
        // The write gate stopped first; HTTP answers reads while the hook finishes.
        #expect(try await eventually(within: .seconds(5)) {
            let refused = try await client.request("POST", "/api/v1/deploys", body: Array(#"{"service":"web","version":"v3"}"#.utf8))
            return refused.status == 503 && json(refused)["error"]?["code"] == .string("shutting_down")
        }, "writes are refused from the start of shutdown")
        let during = try await client.request("GET", "/api/v1/runs/\(id)")
        #expect(during.status == 200 && json(during)["status"] == .string("running"), "reads answer while the roll stops")
        await stopping.value
        #expect(try app.store.run(id)?.status == .running, "left running for the next start")
        #expect(try app.store.logs(run: id, after: 0, limit: 500).contains { $0.text == "deployed" }, "the hook finished within shutdown_timeout")
        await #expect(throws: (any Error).self, "HTTP has stopped") { _ = try await client.request("GET", "/healthz") }
        let next = LeaseOwner(host: "next", pid: 1, start: 1)
        #expect(try app.store.claimServer(owner: next, for: .seconds(15), isGone: { _ in false }) == nil,
                "the database was given back last: another process claims it at once")
        #expect(try app.store.takeOver(owner: next, lease: .seconds(15), excluding: [], isGone: { _ in false }).map(\.id) == [id],
                "the run's lease was released: the next start resumes it at once")
    }
}
