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

/// rollgate in-process on a free loopback port, driven over real HTTP.
@Suite struct EndToEndTests {
    let directory = TempDirectory()

    func startApp(_ services: [ServiceConfig]) async throws -> App {
        try await startedApp(services, database: directory.path + "/e2e.db")
    }

    @Test func theDemoRollSucceedsOverHTTPAndItsHistorySurvivesARestart() async throws {
        var app = try await startApp([quickService("web")])
        var client = HTTPClient(port: app.server.port)
        // Bad input over the wire: a clear 4xx in JSON, nothing stored, the server unhurt.
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        for body in ["{\"service\":", "\u{0}\u{1}", "[]", #"{"service":"web","version":"v 2"}"#, deep] {
            let refused = try await client.request("POST", "/api/v1/deploys", body: Array(body.utf8))
            #expect((400..<500).contains(refused.status), "\(body)")
            #expect(json(refused)["error"]?["code"]?.string != nil, "\(body)")
        }
        #expect(json(try await client.request("GET", "/api/v1/runs"))["runs"]?.array?.isEmpty == true)
        let accepted = try await client.request("POST", "/api/v1/deploys", headers: [("Content-Type", "application/json")],
                                                body: Array(#"{"service":"web","version":"v2"}"#.utf8))
        #expect(accepted.status == 202)
        let id = try #require(json(accepted)["id"]?.int)
        let run = try await finished(client, run: id)
        #expect(run["status"] == .string("succeeded"))
        #expect(run["error"] == .null)
        #expect(run["started_at"]?.string != nil && run["finished_at"]?.string != nil)
        let steps = run["steps"]?.array ?? []
        #expect(steps.map { "\($0["target_id"]!.string!) \($0["phase"]!.string!) \($0["status"]!.string!)" } == [
            "web-1 drain succeeded", "web-1 deploy succeeded", "web-1 restore succeeded",
            "web-2 drain succeeded", "web-2 deploy succeeded", "web-2 restore succeeded",
            "web-3 drain succeeded", "web-3 deploy succeeded", "web-3 restore succeeded",
        ])
        // Each target's time out of service, and the run's total.
        let outages = run["out_of_service"]?.array ?? []
        #expect(outages.compactMap { $0["target_id"]?.string } == ["web-1", "web-2", "web-3"])
        let ms = outages.compactMap { $0["ms"]?.int }
        #expect(ms.count == 3 && ms.allSatisfy { $0 >= 500 }, "drain 300 ms + health 200 ms at least: \(ms)")
        #expect(run["out_of_service_ms"]?.int == ms.reduce(0, +))
        // One target at a time: each target's steps end before the next target's begin.
        let times = steps.map { ($0["started_at"]!.string!, $0["finished_at"]!.string!) }
        for (a, b) in zip(times, times.dropFirst()) { #expect(a.1 <= b.0) }

        let logs = json(try await client.request("GET", "/api/v1/runs/\(id)/logs"))
        let lines = logs["lines"]?.array ?? []
        #expect(lines.contains { $0["text"] == .string("deploying v2 to web-2") && $0["stream"] == .string("stdout") && $0["target_id"] == .string("web-2") })
        // The load balancer's answers are in the log: the first poll goes one poll interval after
        // DeregisterTargets, so on a slow machine the 300 ms drain may be over by then.
        #expect(lines.contains { $0["text"] == .string("DeregisterTargets web-1:8080") })
        #expect(lines.contains { ["web-1: draining (Target.DeregistrationInProgress)", "web-1: unused (Target.NotRegistered)"].contains($0["text"]?.string ?? "") },
                "\(lines.compactMap { $0["text"]?.string }.prefix(12))")
        let middle = try #require(lines[lines.count / 2]["seq"]?.int)
        let tail = json(try await client.request("GET", "/api/v1/runs/\(id)/logs?after=\(middle)"))["lines"]?.array ?? []
        #expect(tail.count == lines.count - lines.count / 2 - 1)
        #expect(tail.allSatisfy { ($0["seq"]?.int ?? 0) > middle })

        let page = String(decoding: try await client.request("GET", "/").body, as: UTF8.self)
        #expect(page.contains("succeeded") && page.contains(">v2<"))
        let services = json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first
        #expect(services?["last_good_version"] == .string("v2"))

        await app.stop()
        app = try await startApp([quickService("web")])
        client = HTTPClient(port: app.server.port)
        let again = json(try await client.request("GET", "/api/v1/runs/\(id)"))
        #expect(again == run, "the history is still there after a restart")
        #expect(json(try await client.request("GET", "/api/v1/runs/\(id)/logs"))["lines"]?.array?.count == lines.count)
        await app.stop()
    }

    @Test func aTargetLeftOutByAFailedHealthGateIsShownThenBroughtBackByTheNextDeploy() async throws {
        var app = try await startApp([quickService("web", unhealthy: ["web-2"], healthyTimeout: .seconds(1))])
        var client = HTTPClient(port: app.server.port)
        let id = try #require(json(try await client.request("POST", "/api/v1/deploys", body: Array(#"{"service":"web","version":"bad1"}"#.utf8)))["id"]?.int)
        let run = try await finished(client, run: id)
        #expect(run["status"] == .string("failed"))
        #expect(run["error_code"] == .string("health_timeout"), "where it failed, as a code")
        let error = try #require(run["error"]?.string)
        #expect(error.contains("web-2 not healthy after 1s") && error.contains("unhealthy (Target.FailedHealthChecks)"))
        let text = String(decoding: try await client.request("GET", "/runs/\(id)", headers: [("Accept", "text/plain")]).body, as: UTF8.self)
        #expect(text.contains("error (health_timeout): web-2 not healthy after 1s"), "\(text)")
        #expect(!(run["steps"]?.array ?? []).contains { $0["target_id"] == .string("web-3") })
        // The left-out target does not disappear: listed, counted, on the page and in metrics.
        let service = try #require(json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first)
        let targets = service["targets"]?.array ?? []
        #expect(targets.compactMap { $0["id"]?.string } == ["web-1", "web-2", "web-3"])
        let web2 = try #require(targets.first { $0["id"] == .string("web-2") })
        #expect(web2["state"] == .string("left_out"))
        #expect(web2["left_out"]?["run_id"]?.int == id)
        #expect(web2["left_out"]?["reason"]?.string?.contains("not healthy after 1s") == true)
        #expect(service["left_out"]?.int == 1)
        #expect(targets.first { $0["id"] == .string("web-3") }?["state"] == .string("healthy"))
        let metrics = String(decoding: try await client.request("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("rollgate_targets_left_out{service=\"web\"} 1"))
        let page = String(decoding: try await client.request("GET", "/").body, as: UTF8.self)
        #expect(page.contains("<span class=\"id\">web-2</span> <span class=\"version\">unknown</span> <span class=\"state-left_out\">left_out</span>"))
        #expect(page.contains("web has lost capacity: serving 2 of 3") && page.contains("<code>rollgate restore web web-2</code>"), "the banner says it and the next step")
        let runPage = String(decoding: try await client.request("GET", "/runs/\(id)", headers: [("Accept", "text/html")]).body, as: UTF8.self)
        #expect(runPage.contains("<strong>Next steps</strong>") && runPage.contains("web-2 is still out of the load balancer")
                && runPage.contains("<code>rollgate restore web web-2</code>"), "the failed run's page says what to do")
        let statusText = String(decoding: try await client.request("GET", "/status.txt").body, as: UTF8.self)
        #expect(statusText.contains("next: web is short of web-2: fix it, then `rollgate restore web web-2`"), "and the text page: \(statusText)")

        // The build is fixed; the next deploy rolls web-2 first (already out: no capacity
        // taken) and counts it, and the fleet is whole again.
        await app.stop()
        app = try await startApp([quickService("web")])
        client = HTTPClient(port: app.server.port)
        let fixed = try #require(json(try await client.request("POST", "/api/v1/deploys", body: Array(#"{"service":"web","version":"good2"}"#.utf8)))["id"]?.int)
        let done = try await finished(client, run: fixed)
        #expect(done["status"] == .string("succeeded"), "\(done.text)")
        let lines = (json(try await client.request("GET", "/api/v1/runs/\(fixed)/logs"))["lines"]?.array ?? []).compactMap { $0["text"]?.string }
        #expect(lines.first { $0.hasPrefix("rolling web to good2") }?.contains("over 3 target(s): web-2, web-1, web-3; left out before and included first: web-2") == true, "\(lines)")
        #expect(lines.contains("all 3 target(s) run good2 and are healthy"))
        let after = try #require(json(try await client.request("GET", "/api/v1/services"))["services"]?.array?.first)
        #expect((after["targets"]?.array ?? []).allSatisfy { $0["state"] == .string("healthy") }, "\(after.text)")
        #expect(after["left_out"]?.int == 0)
        #expect(after["last_good_version"] == .string("good2"))
        await app.stop()
    }

    @Test func runsOfOneServiceWaitTheirTurnAndANewerDeploySupersedesAQueuedOne() async throws {
        let app = try await startApp([quickService("web", targets: 2)])
        let client = HTTPClient(port: app.server.port)
        var ids: [Int64] = []
        for version in ["v1", "v2", "v3"] {
            ids.append(try #require(json(try await client.request("POST", "/api/v1/deploys", body: Array(#"{"service":"web","version":"\#(version)"}"#.utf8)))["id"]?.int))
            if version == "v1" {
                // Only a run still queued is superseded: let v1 start first.
                #expect(try await eventually { json(try await client.request("GET", "/api/v1/runs/\(ids[0])"))["status"] == .string("running") })
            }
        }
        let first = try await finished(client, run: ids[0])
        let second = try await finished(client, run: ids[1])
        let third = try await finished(client, run: ids[2])
        #expect(first["status"] == .string("succeeded"))
        #expect(second["status"] == .string("superseded"))
        #expect(second["error"] == .string("superseded by run \(ids[2]) (v3)"), "\(second["error"] ?? .null)")
        #expect(third["status"] == .string("succeeded"))
        #expect(first["finished_at"]!.string! <= third["started_at"]!.string!)
        await app.stop()
    }
}
