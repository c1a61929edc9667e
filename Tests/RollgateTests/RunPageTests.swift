import Foundation
import Testing
import HTTPTesting
@testable import Configuration
@testable import Page
@testable import RollgateServer
@testable import WireFormat
import Rollout

/// A roll you can read at a glance (issue 20): the timeline picture, the folded log grouped by
/// target, the progress line, out-of-service time that never exceeds the run's own, and the
/// tab's title and icon.
@Suite struct RunPageTests {
    let directory = TempDirectory()
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func step(_ id: Int64, _ target: String, _ phase: Phase, _ from: Double, _ until: Double?, _ status: StepStatus = .succeeded) -> Step {
        Step(id: id, runID: 1, targetID: target, targetPort: 80, phase: phase, status: until == nil ? .running : status,
             startedAt: t0.addingTimeInterval(from), finishedAt: until.map { t0.addingTimeInterval($0) })
    }

    /// Spans of one class in the picture, by lane: `[target: [(from ms, until ms)]]`.
    static func spans(_ svg: String, class name: String) -> [String: [(Int, Int)]] {
        var found: [String: [(Int, Int)]] = [:]
        for lane in svg.split(separator: "<g class=\"lane\"").dropFirst() {
            guard let target = lane.firstMatch(of: /data-target="([^"]+)"/)?.1 else { continue }
            for rect in lane.matches(of: /<rect [^>]*class="([^"]+)" data-from="(\d+)" data-until="(\d+)"/) where rect.1.split(separator: " ").contains(Substring(name)) {
                found[String(target), default: []].append((Int(rect.2)!, Int(rect.3)!))
            }
        }
        return found
    }

    @Test func aBatchRunsTimelineShowsLanesOutOfServiceAtOnceAndTheCapacityLine() async throws {
        var service = quickService("web", targets: 4)
        service.plan.maxUnavailable = .count(2)
        let app = try await startedApp([service], database: directory.path + "/batch.db")
        defer { Task { await app.stop() } }
        let client = HTTPClient(port: app.server.port)
        let id = try await deploy(client, "web", "v2")
        #expect(try await finished(client, run: id)["status"] == .string("succeeded"))
        let page = String(decoding: await app.call("GET", "/runs/\(id)", headers: ["Accept": "text/html"]).body, as: UTF8.self)
        let svg = try #require(page.firstMatch(of: /<svg id="timeline"[\s\S]*?<\/svg>/).map { String($0.0) }, "a timeline on the run page")
        let out = Self.spans(svg, class: "out")
        #expect(out.keys.sorted() == ["web-1", "web-2", "web-3", "web-4"], "a lane per target: \(out)")
        let first = try #require(out["web-1"]?.first), second = try #require(out["web-2"]?.first)
        #expect(first.0 < second.1 && second.0 < first.1, "web-1 and web-2 out at the same time (one batch): \(first) \(second)")
        let third = try #require(out["web-3"]?.first)
        #expect(third.0 >= min(first.1, second.1), "web-3 goes out only when one of the first batch is back")
        for phase in ["drain", "deploy", "restore"] {
            #expect(Self.spans(svg, class: "phase-\(phase)").count == 4, "\(phase) on every lane")
        }
        #expect(svg.contains("data-lowest=\"2\" data-total=\"4\""), "capacity dips to 2 of 4, never lower: \(svg.prefix(800))")
        // Out-of-service time: each target, then how long the service was short, never more than the run took.
        let run = json(await app.call("GET", "/api/v1/runs/\(id)"))
        let stamps = ISO8601DateFormatter()
        stamps.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let started = try #require(stamps.date(from: run["started_at"]?.string ?? "")), ended = try #require(stamps.date(from: run["finished_at"]?.string ?? ""))
        let took = ended.timeIntervalSince(started)
        let text = String(decoding: await app.call("GET", "/runs/\(id)", headers: ["Accept": "text/plain"]).body, as: UTF8.self)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("out of service: ") }.map(String.init))
        #expect(line.contains("of target time)"), "batches overlap, so target time exceeds the time short: \(line)")
        let short = try #require(line.firstMatch(of: /short for ([\d.]+) (ms|s)/))
        let seconds = Double(short.1)! / (short.2 == "ms" ? 1000 : 1)
        #expect(seconds > 0 && seconds <= took + 0.05, "short for \(seconds) s of a run of \(took) s")
    }

    @Test func theLogIsGroupedByTargetWithRepeatedPollsFolded() async throws {
        // A drain long enough for several polls (every 100 ms) to say `draining` however busy the machine.
        var service = quickService("web", targets: 2)
        service.source = .simulated(SimulationSettings(targets: 2, drainTime: .milliseconds(1500), healthyTime: .milliseconds(200), port: 8080))
        let app = try await startedApp([service], database: directory.path + "/log.db")
        defer { Task { await app.stop() } }
        let client = HTTPClient(port: app.server.port)
        let id = try await deploy(client, "web", "v2")
        #expect(try await finished(client, run: id)["status"] == .string("succeeded"))
        let lines = json(await app.call("GET", "/api/v1/runs/\(id)/logs"))["lines"]?.array ?? []
        let page = String(decoding: await app.call("GET", "/runs/\(id)", headers: ["Accept": "text/html"]).body, as: UTF8.self)
        let log = String(try #require(page.firstMatch(of: /<div id="log"[\s\S]*<\/div>/)).0)
        #expect(log.matches(of: /<details class="log-group" data-target="(web-\d)"/).map { String($0.1) } == ["web-1", "web-2"], "a group per target, in order")
        let shown = log.components(separatedBy: "<div class=\"line ").count - 1
        let folded = log.matches(of: /data-count="(\d+)"/).map { Int($0.1)! }
        #expect(!folded.isEmpty, "the draining polls fold: \(log.prefix(1500))")
        #expect(shown + folded.reduce(0, +) - folded.count == lines.count, "every line is there, shown or counted: \(shown) shown, folded \(folded), \(lines.count) lines")
        #expect(log.contains("×\(try #require(folded.first)), "), "a folded line says how many and for how long")
        // Each line has its anchor, the sequence number the API gives it.
        let firstSeq = try #require(lines.first?["seq"]?.int)
        #expect(log.contains("id=\"L\(firstSeq)\"><a href=\"#L\(firstSeq)\""))
        // The run's own lines stay outside the groups, in place: first and last.
        #expect(log.hasPrefix("<div id=\"log\" class=\"log\" data-after=\"\(lines.last?["seq"]?.int ?? 0)\"><div class=\"line system\""))
        // A finished run that succeeded folds its targets away; the tab says how it ended.
        #expect(!log.contains(" open>"))
        #expect(page.contains("<title>✓ run \(id) succeeded: web v2 · rollgate</title>") && page.contains("/favicon-idle.svg"), "\(page.prefix(600))")
    }

    @Test func foldingKeepsTargetsApartAndOnlyFoldsTheSameLineBackToBack() {
        func line(_ seq: Int64, _ target: String?, _ text: String, _ at: Double) -> LogLine {
            LogLine(seq: seq, runID: 1, at: t0.addingTimeInterval(at), stream: .system, targetID: target, phase: nil, text: text)
        }
        let log = FoldedLog([
            line(1, nil, "rolling", 0), line(2, "a", "draining", 1), line(3, "b", "draining", 1.2), line(4, "a", "draining", 1.5),
            line(5, "a", "draining", 3.5), line(6, "a", "healthy", 4), line(7, "a", "draining", 5), line(8, nil, "done", 6),
        ])
        #expect(log.items.count == 4)
        guard case .target("a", let a) = log.items[1], case .target("b", let b) = log.items[2] else {
            Issue.record("groups a then b: \(log.items)"); return
        }
        #expect(a.map(\.count) == [3, 1, 1], "three drainings back to back fold; one after healthy does not")
        #expect(FoldedLog.folded(a[0]) == "×3, 2.5 s")
        #expect(b.map(\.count) == [1], "b's line is b's, though it came between a's")
        guard case .run(let last) = log.items[3] else { Issue.record("the run's last line last"); return }
        #expect(last.line.text == "done")
    }

    @Test func progressSaysHowFarAndWhatTheTargetInHandDoesAgainstItsLimit() {
        var run = Run(id: 1, service: "web", version: "v2", status: .running, createdAt: t0, startedAt: t0)
        run.steps = [step(1, "web-1", .drain, 0, 3), step(2, "web-1", .deploy, 3, 4), step(3, "web-1", .restore, 4, 6),
                     step(4, "web-2", .drain, 6, nil)]
        let plan = ServicePlan(name: "web", drainTimeout: .seconds(300), hooks: HookCommands(deploy: "true"))
        let progress = RunProgress(run, targets: 3)
        #expect(progress.text(now: t0.addingTimeInterval(18), plan: plan)
                == "1 of 3 targets done; web-2 draining for 12 s of ~5 min")
        #expect(RunProgress(run).total == 2, "without the service's count, the targets it touched")
        // A batch: two in hand.
        run.steps.append(step(5, "web-3", .restore, 7, nil))
        #expect(RunProgress(run, targets: 3).text(now: t0.addingTimeInterval(10))
                == "1 of 3 targets done; web-2 draining for 4.0 s; web-3 waiting to be healthy for 3.0 s")
    }

    @Test func timeShortNeverExceedsTheRunsWhileTargetTimeSumsTheSpans() throws {
        var run = Run(id: 1, service: "web", version: "v2", status: .succeeded, createdAt: t0, startedAt: t0, finishedAt: t0.addingTimeInterval(25))
        run.steps = [step(1, "a", .drain, 0, 4), step(2, "a", .restore, 8, 10),
                     step(3, "b", .drain, 5, 9), step(4, "b", .restore, 12, 15),
                     step(5, "c", .drain, 20, 22), step(6, "c", .restore, 23, 25)]
        let out = try #require(OutOfService(run, now: t0.addingTimeInterval(30)))
        #expect(out.spans.map(\.duration) == [.seconds(10), .seconds(10), .seconds(5)])
        #expect(out.targetTime == .seconds(25))
        #expect(out.shortFor == .seconds(20), "0-15 and 20-25: the overlap of a and b counts once")
        // A target the run left out is out still after it ended: the run was short only until its end.
        var failed = run
        failed.status = .failed
        failed.finishedAt = t0.addingTimeInterval(22)
        failed.steps.removeLast()
        let left = try #require(OutOfService(failed, now: t0.addingTimeInterval(100)))
        #expect(left.spans.last.map { [$0.duration == .seconds(80), $0.stillOut] } == [true, true], "c out for 80 s so far")
        #expect(left.shortFor == .seconds(17), "0-15 and 20-22: never past the run's end")
        let svg = try #require(RunTimeline(run: run, now: t0.addingTimeInterval(30)).svg)
        #expect(svg.contains("data-lowest=\"1\" data-total=\"3\""), "a and b out together: 1 of 3 in service")
        let out2 = Self.spans(svg, class: "out")
        #expect(out2["a"]?.first.map { [$0.0, $0.1] } == [0, 10000] && out2["b"]?.first.map { [$0.0, $0.1] } == [5000, 15000])
        #expect(Self.spans(svg, class: "phase-drain")["c"]?.first.map { [$0.0, $0.1] } == [20000, 22000])
    }

    @Test func versionsLinkToTheirCommitAndChangesAndRollbacksSaySo() async throws {
        var web = quickService("web", targets: 2)
        web.triggers.github = ServiceTriggers.Git(repository: "acme/web", branch: "main")
        var api = quickService("api", targets: 1)
        api.triggers.gitlab = ServiceTriggers.Git(repository: "group/api", branch: "main", webURL: "https://gitlab.example.com")
        let app = try await startedApp([web, api, quickService("plain", targets: 1)], database: directory.path + "/links.db")
        defer { Task { await app.stop() } }
        let client = HTTPClient(port: app.server.port)
        for version in ["1a2b3c4", "5d6e7f8"] { _ = try await finished(client, run: try await deploy(client, "web", version)) }
        func page(_ path: String) async -> String { String(decoding: await app.call("GET", path, headers: ["Accept": "text/html"]).body, as: UTF8.self) }
        let second = await page("/runs/2")
        #expect(second.contains("<a href=\"https://github.com/acme/web/commit/5d6e7f8\" class=\"commit\">5d6e7f8</a>"), "\(second.prefix(1500))")
        #expect(second.contains("<a href=\"https://github.com/acme/web/compare/1a2b3c4...5d6e7f8\" class=\"compare\">changes since 1a2b3c4</a>"))
        // A rollback says so, and its changes are from the version it rolls back from.
        let rollback = json(await app.call("POST", "/api/v1/services/web/rollback"))
        #expect(rollback["rollback_from"] == .string("5d6e7f8") && rollback["version"] == .string("1a2b3c4"), "\(rollback)")
        _ = try await finished(client, run: 3)
        let third = await page("/runs/3")
        #expect(third.contains("<span class=\"rollback\">↩ rollback from 5d6e7f8</span>"))
        #expect(third.contains("https://github.com/acme/web/compare/5d6e7f8...1a2b3c4"))
        #expect(third.contains("<title>✓ run 3 succeeded: web 1a2b3c4 (rollback from 5d6e7f8) · rollgate</title>"))
        let state = await page("/")
        #expect(state.contains("<span class=\"version\"><a href=\"https://github.com/acme/web/commit/1a2b3c4\" class=\"commit\">1a2b3c4</a></span>"), "targets link their version")
        #expect(state.contains("↩ rollback from 5d6e7f8"), "the runs table labels it")
        // GitLab (a server of its own), and a service mapped to neither has no link.
        _ = try await finished(client, run: try await deploy(client, "api", "release/1.2"))
        #expect(await page("/runs/4").contains("https://gitlab.example.com/group/api/-/commit/release/1.2"))
        _ = try await finished(client, run: try await deploy(client, "plain", "v1"))
        #expect(!(await page("/runs/5")).contains("class=\"commit\""))
        // Where links cannot go: a GitLab url that is no web address is refused by the config.
        #expect {
            try ConfigLoader(environment: [:]).parse("services:\n  - name: a\n    simulated: {}\n    hooks: {deploy: x}\n    gitlab: {project: g/a, url: 'javascript:alert(1)'}\n")
        } throws: { "\($0)".contains("services[0].gitlab.url (line 5): expected the GitLab server's address") }
    }

    @Test func aRunningRunsPageSaysHowFarAgainstItsFrozenPlan() async throws {
        var service = quickService("web", targets: 3)
        service.source = .simulated(SimulationSettings(targets: 3, drainTime: .seconds(30), healthyTime: .milliseconds(200), port: 8080))
        let app = try await startedApp([service], database: directory.path + "/progress.db")
        defer { Task { await app.stop() } }
        let client = HTTPClient(port: app.server.port)
        let id = try await deploy(client, "web", "v2")
        var page = ""
        #expect(try await eventually {
            page = String(decoding: await app.call("GET", "/runs/\(id)", headers: ["Accept": "text/html"]).body, as: UTF8.self)
            return page.contains("web-1 draining for")
        }, "\(page.prefix(1200))")
        #expect(page.contains("<p class=\"progress\">0 of 3 targets done; web-1 draining for ") && page.contains(" of ~10 s</p>"),
                "three targets planned though one is touched: \(page.prefix(1200))")
        let running = json(await app.call("GET", "/api/v1/services"))["services"]?.array?.first?["running"]
        #expect(running?["targets_done"]?.int == 0 && running?["targets_total"]?.int == 3, "\(String(describing: running))")
        #expect(running?["progress"]?.string?.hasPrefix("0 of 3 targets done; web-1 draining for ") == true)
        // The run's own JSON says it too (what deploy -f reads, without asking the load balancer).
        let run = json(await app.call("GET", "/api/v1/runs/\(id)"))
        #expect(run["targets_done"]?.int == 0 && run["targets_total"]?.int == 3
                && run["progress"]?.string?.hasPrefix("0 of 3 targets done; web-1 draining for ") == true, "\(run)")
        _ = await app.call("POST", "/api/v1/runs/\(id)/cancel")
    }

    @Test func aFailedRunsPageSaysTheNextSteps() async throws {
        let app = try await startedApp([quickService("web", targets: 2, deploy: #"[ "$ROLLGATE_VERSION" = bad ] && exit 3; echo ok"#)],
                                       database: directory.path + "/next.db")
        defer { Task { await app.stop() } }
        let client = HTTPClient(port: app.server.port)
        #expect(try await finished(client, run: try await deploy(client, "web", "v1"))["status"] == .string("succeeded"))
        let failed = try await deploy(client, "web", "bad")
        #expect(try await finished(client, run: failed)["status"] == .string("failed"))
        let page = String(decoding: await app.call("GET", "/runs/\(failed)", headers: ["Accept": "text/html"]).body, as: UTF8.self)
        #expect(page.contains("web-1 is still out of the load balancer. Fix it, then <code>rollgate restore web web-1</code>"), "\(page.prefix(2000))")
        #expect(page.contains("To put v1, the last good version, back on every target: <code>rollgate deploy web v1</code>"))
        #expect(page.contains("class=\"action-restore\"") && page.contains("class=\"action-deploy\">Deploy v1 again"), "the demo may act: buttons beside the commands")
        let text = String(decoding: await app.call("GET", "/runs/\(failed)", headers: ["Accept": "text/plain"]).body, as: UTF8.self)
        #expect(text.contains("next: web-1 is still out of the load balancer: fix it, then `rollgate restore web web-1`")
                && text.contains("next: `rollgate deploy web v1` puts v1, the last good version, back on every target"), "the text page too: \(text)")
        // The API's run says them as commands, and `rollgate run` prints them.
        let steps = (json(await app.call("GET", "/api/v1/runs/\(failed)"))["next_steps"]?.array ?? []).compactMap { $0["command"]?.string }
        #expect(steps == ["rollgate restore web web-1", "rollgate deploy web v1"], "\(steps)")
        #expect(json(await app.call("GET", "/api/v1/runs/1"))["next_steps"] == nil, "a run that succeeded has none")
        let shown = try await cli(["run", "\(failed)", "--server", "http://127.0.0.1:\(app.server.port)"])
        #expect(shown.stdout.contains("next: `rollgate deploy web v1` puts v1, the last good version, back on every target"), "\(shown)")
        // The CLI says the same when a followed deploy fails (stderr: hints, not the result).
        let followed = try await cli(["deploy", "web", "bad", "-f", "--server", "http://127.0.0.1:\(app.server.port)"])
        #expect(followed.status == 1 && followed.stderr.contains("hint: `rollgate deploy web v1` puts v1, the last good version, back on every target")
                && followed.stderr.contains("`rollgate restore web web-1`"), "\(followed)")
        // A run that succeeded has nothing to do next.
        #expect(!String(decoding: await app.call("GET", "/runs/1", headers: ["Accept": "text/html"]).body, as: UTF8.self).contains("Next steps"))
    }
}
