@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
import HTTPTesting
@testable import RollgateServer
import Rollout

/// `/metrics` as Prometheus reads it: parsed by `prometheus_client`'s own parser, after real
/// rolls on a running server. Everything is counted as it happens.
@Suite struct MetricsTests {
    let directory = TempDirectory()

    struct Sample: Equatable {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    struct Scrape {
        /// name -> (type, help)
        let families: [String: (type: String, help: String)]
        let samples: [Sample]

        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples.first { $0.name == name && $0.labels == labels }?.value
        }
    }

    func pairs(_ value: JSONValue) -> [(String, JSONValue)]? {
        if case .object(let pairs) = value { return pairs }
        return nil
    }

    /// What `prometheus_client` makes of the text (a parse error fails the test).
    func scrape(_ client: HTTPClient) async throws -> Scrape {
        let response = try await client.request("GET", "/metrics")
        #expect(response.status == 200)
        #expect(response.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let file = directory.write("metrics-\(UUID().uuidString).txt", String(decoding: response.body, as: UTF8.self))
        let (status, output) = try await runToEnd("/usr/bin/env", ["python3", "-c", """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = {"families": {}, "samples": []}
            for f in text_string_to_metric_families(open(sys.argv[1]).read()):
                out["families"][f.name] = [f.type, f.documentation]
                for s in f.samples:
                    out["samples"].append([s.name, s.labels, s.value])
            print(json.dumps(out))
            """, file], keepStandardError: true)
        try #require(status == 0, "prometheus_client could not parse /metrics (make test installs it): \(output)")
        let parsed = try #require(JSONValue.parse(Array(output.utf8)))
        var families: [String: (String, String)] = [:]
        for (name, pair) in parsed["families"].flatMap(pairs) ?? [] {
            families[name] = (pair.array?[0].string ?? "", pair.array?[1].string ?? "")
        }
        let samples = (parsed["samples"]?.array ?? []).map { sample in
            Sample(name: sample.array?[0].string ?? "",
                   labels: Dictionary(uniqueKeysWithValues: (sample.array.flatMap { pairs($0[1]) } ?? []).map { ($0.0, $0.1.string ?? "") }),
                   value: sample.array?[2].number ?? .nan)
        }
        return Scrape(families: families, samples: samples)
    }

    func startApp(_ services: [ServiceConfig]) async throws -> App {
        try await startedApp(services, database: directory.path + "/metrics.db")
    }

    @Test func rollsHooksWaitersAndRequestsAreCountedAsTheyHappen() async throws {
        let app = try await startApp([quickService("web"), quickService("api", targets: 2, deploy: "exit 3")])
        let client = HTTPClient(port: app.server.port)
        let before = try await scrape(client)
        #expect(before.value("rollgate_runs_finished_total", ["service": "api", "outcome": "succeeded"]) == 0,
                "every service's outcomes exist from the start")
        for (name, family) in before.families {
            #expect(!family.help.isEmpty && !family.help.hasPrefix("rollgate_"), "\(name) has help text")
        }

        let good = try await deploy(client, "web", "v2")
        let bad = try await deploy(client, "api", "v9")
        #expect(try await finished(client, run: good)["status"] == .string("succeeded"))
        #expect(try await finished(client, run: bad)["status"] == .string("failed"))
        // A queued deploy superseded by the next one is an outcome too.
        #expect(try await client.request("POST", "/api/v1/services/web/lock", body: Array(#"{"reason":"hold the queue"}"#.utf8)).status == 200)
        _ = try await client.request("POST", "/api/v1/deploys", body: Array(#"{"service":"web","version":"v3","wait_for_lock":true}"#.utf8))
        _ = try await client.request("POST", "/api/v1/deploys", body: Array(#"{"service":"web","version":"v4","wait_for_lock":true}"#.utf8))

        let after = try await scrape(client)
        #expect(after.families["rollgate_runs_finished"]?.type == "counter")
        #expect(after.value("rollgate_runs_finished_total", ["service": "web", "outcome": "succeeded"]) == 1)
        #expect(after.value("rollgate_runs_finished_total", ["service": "api", "outcome": "failed"]) == 1)
        #expect(after.value("rollgate_runs_finished_total", ["service": "web", "outcome": "superseded"]) == 1)
        #expect(after.value("rollgate_runs_queued", ["service": "web"]) == 1)
        #expect(after.value("rollgate_rolling", ["service": "web"]) == 0)
        #expect(after.families["rollgate_run_duration_seconds"]?.type == "histogram")
        #expect(after.value("rollgate_run_duration_seconds_count", ["service": "web", "outcome": "succeeded"]) == 1)
        #expect(after.value("rollgate_target_duration_seconds_count", ["service": "web"]) == 3)
        let outOfService = try #require(after.value("rollgate_target_out_of_service_seconds_sum", ["service": "web"]))
        #expect(after.value("rollgate_target_out_of_service_seconds_count", ["service": "web"]) == 3)
        #expect(outOfService >= 3 * 0.5, "each target is out for its drain (0.3 s) and health check (0.2 s) at least: \(outOfService)")
        #expect(after.value("rollgate_hooks_total", ["service": "web", "phase": "deploy", "result": "exit_0"]) == 3)
        #expect(after.value("rollgate_hooks_total", ["service": "api", "phase": "deploy", "result": "exit_3"]) == 1)
        #expect(after.value("rollgate_hook_duration_seconds_count", ["service": "api", "phase": "deploy"]) == 1)
        #expect(after.value("rollgate_targets_left_out", ["service": "api"]) == 1)
        #expect(after.value("rollgate_waiter_polls_total", ["service": "web", "rule": "drained", "result": "met"]) == 3)
        #expect(after.value("rollgate_waiter_polls_total", ["service": "web", "rule": "inService", "result": "met"]) == 3)
        #expect(after.value("rollgate_waiter_observed_lag_seconds_count", ["service": "web", "rule": "drained"]) == 3)
        let lag = try #require(after.value("rollgate_waiter_observed_lag_seconds_sum", ["service": "web", "rule": "drained"]))
        #expect(lag > 0 && lag < 3 * 1.0, "noticed within about a poll (100 ms) of the poll before: \(lag)")
        #expect(after.value("rollgate_http_requests_total", ["route": "/api/v1/deploys", "method": "POST", "status": "202"]) == 4)
        #expect((after.value("rollgate_http_requests_total", ["route": "/api/v1/runs/{id}", "method": "GET", "status": "200"]) ?? 0) >= 2)
        #expect(after.value("rollgate_http_request_duration_seconds_count", ["route": "/metrics"]) == 1, "the first scrape")
        #expect(after.value("rollgate_build_info", ["version": API.version]) == 1)
        #expect(after.value("rollgate_database_writable") == 1)
        #expect(after.value("rollgate_runs_held", ["replica": app.store.replica, "service": "web"]) == 0, "nothing rolls now")
        #expect(!app.store.replica.isEmpty)
        #expect(try await finished(client, run: good)["rolled_by"] == .string(app.store.replica))
        #expect(after.value("rollgate_database_write_failures_total") == 0)
        #expect(after.value("rollgate_open_streams") == 0)
        for (name, family) in after.families {
            #expect(!family.help.isEmpty && !family.help.hasPrefix("rollgate_"), "\(name) has help text")
            if family.type == "counter" { #expect(after.samples.contains { $0.name == name + "_total" }, "\(name): counters end in _total") }
        }
        #expect(!after.samples.contains { $0.name.contains("milliseconds") }, "base units: seconds")
        // Each histogram series has distinct, rising bucket bounds.
        var bounds: [String: [String]] = [:]
        for sample in after.samples where sample.name.hasSuffix("_bucket") {
            var labels = sample.labels
            let le = labels.removeValue(forKey: "le") ?? ""
            bounds[sample.name + "\(labels.sorted { $0.key < $1.key })", default: []].append(le)
        }
        for (series, les) in bounds {
            #expect(Set(les).count == les.count && les.last == "+Inf", "\(series): \(les)")
        }
        await app.stop()
    }

    @Test func missingPathsAreCountedUnderTheirRoutesPatternNotTheirPath() async throws {
        let app = try await startApp([quickService("web")])
        let client = HTTPClient(port: app.server.port)
        for index in 0..<3 { _ = try await client.request("GET", "/api/v1/nothing-\(index)") }
        let scrape = try await scrape(client)
        #expect(scrape.value("rollgate_http_requests_total", ["route": "/{path...}", "method": "GET", "status": "404"]) == 3)
        #expect(!scrape.samples.contains { $0.labels["route"]?.contains("nothing") == true })
        await app.stop()
    }
}
