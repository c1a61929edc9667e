import Configuration
import LoadBalancing
import WireFormat
import MicroHTTP
import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `GET /`: `public/index.html` with the current state rendered into it, so `curl` prints
/// readable state without JavaScript; in a browser, `status.js` keeps it up to date.
package struct StatusPage: Sendable {
    let files: StaticFiles
    /// Read where the caller may block (a run page is answered on the HTTP server's thread).
    let history: any RunHistory
    /// Read from Swift's pool (the page and status.txt ask the load balancer too).
    let reads: any HistoryReads
    let config: Config
    let services: ServiceDirectory
    let clock: any RolloutClock

    package init(files: StaticFiles, history: any RunHistory, reads: any HistoryReads, config: Config, services: ServiceDirectory,
                 clock: any RolloutClock) {
        self.files = files
        self.history = history
        self.reads = reads
        self.config = config
        self.services = services
        self.clock = clock
    }

    static let placeholder = "<!-- rollgate:state -->"

    package func render(_ request: HTTPRequest, session: PageSession? = nil) async throws -> HTTPResponse {
        if wantsText(request) { return text(try await stateText(width: try StatusPage.width(request))) }
        let state = try await stateHTML(session: session)
        if request.query["part"] == "state" { return html(state.html) }
        return page(actionPanel(session) + state.html, title: state.title, icon: state.icon)
    }

    /// `GET /status.txt`.
    package func renderText(_ request: HTTPRequest) async throws -> HTTPResponse {
        text(try await stateText(width: try StatusPage.width(request)))
    }

    /// `GET /runs/{id}`: a run's page (`?part=run` is the live part the script swaps in).
    package func renderRun(_ request: HTTPRequest, session: PageSession? = nil) throws -> HTTPResponse {
        guard let text = request.parameters["id"], let id = Int64(text), id > 0, let run = try history.run(id) else {
            return .error(404, code: "run_not_found", message: "no run \(request.parameters["id"] ?? "")")
        }
        let lines = try history.logs(run: id, after: 0, limit: 5000)
        if wantsText(request) { return self.text(runText(run, lines: lines, width: try StatusPage.width(request))) }
        let body = runHTML(run, lines: lines, session: session)
        if request.query["part"] == "run" {
            return html(String(body[..<(body.firstRange(of: "</section>")?.upperBound ?? body.endIndex)]))
        }
        return page("<p><a href=\"/\">← all services</a></p>\n" + body, title: StatusPage.title(of: run), icon: StatusPage.icon(of: run))
    }

    /// What a text page's tables fit in: `?width=` (20-1000), else 100 columns.
    static func width(_ request: HTTPRequest) throws -> Int {
        guard let text = request.query["width"] else { return 100 }
        guard let width = Int(text), (20...1000).contains(width) else {
            throw WidthRefused()
        }
        return width
    }

    /// `?width=` out of range: the API answers 400 `invalid_width`.
    package struct WidthRefused: Error {}

    func wantsText(_ request: HTTPRequest) -> Bool {
        let accept = request.header("accept") ?? ""
        return accept.contains("text/plain") && !accept.contains("text/html")
    }

    /// A text page with every control character but newline and tab shown as `\u{1B}` (a
    /// hook's ESC or CR must not drive the reader's terminal), and bidirectional controls too.
    func text(_ body: String) -> HTTPResponse {
        var response = HTTPResponse(status: 200, contentType: "text/plain; charset=utf-8", text: VisibleText.escape(body, keeping: ["\n", "\t"]))
        response.headers.append(("Cache-Control", "no-store"))
        return response
    }

    func html(_ body: String) -> HTTPResponse {
        var response = HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", text: body)
        response.headers.append(("Cache-Control", "no-store"))
        return response
    }

    /// A run's page title: what it does and how it stands, so a tab says it.
    static func title(of run: Run) -> String {
        let mark: String
        switch run.status {
        case .running: mark = "▶ "
        case .failed: mark = "✗ "
        case .succeeded: mark = "✓ "
        default: mark = ""
        }
        return "\(mark)run \(run.id) \(run.status.rawValue): \(run.service) \(what(run)) · rollgate"
    }

    /// The favicon for a state: `running`, `failed` or `idle`.
    static func icon(of run: Run) -> String {
        switch run.status {
        case .running, .queued: return "running"
        case .failed: return "failed"
        default: return "idle"
        }
    }

    /// `public/index.html` with the state in place of its placeholder, the title and the
    /// favicon of the state (`idle`, `running`, `failed`).
    func page(_ content: String, title: String, icon: String = "idle") -> HTTPResponse {
        guard let (bytes, _) = try? files.load("index.html") else {
            // No public/ directory: the state alone still answers.
            return html("<!doctype html><title>\(escape(title))</title>\n" + content)
        }
        return html(String(decoding: bytes, as: UTF8.self).replacing(StatusPage.placeholder, with: content)
            .replacing("<title>rollgate</title>", with: "<title>\(escape(title))</title>")
            .replacing("/favicon-idle.svg", with: "/favicon-\(icon).svg"))
    }

    /// `GET /login` (and a failed sign-in): a form for a token with the read scope.
    package func loginForm(message: String?, status: Int) -> HTTPResponse {
        let note = message.map { "<p class=\"login-message\">\(escape($0))</p>\n" } ?? ""
        var response = html("""
            <!doctype html>
            <html lang="en">
            <head><meta charset="utf-8"><title>rollgate: sign in</title>
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <link rel="stylesheet" href="/style.css"></head>
            <body>
            <h1>rollgate</h1>
            \(note)<form method="post" action="/login">
            <p><label>API token <input type="password" name="token" autocomplete="current-password" required autofocus></label></p>
            <p><button type="submit">Sign in</button></p>
            </form>
            <p>The session lasts 12 hours and may do what the token's scopes allow: read; deploy, cancel, promote and roll back (deploy); lock, unlock, restore and forget (admin). It ends when the token is removed from the config or its secret changes.</p>
            </body>
            </html>
            """)
        response.status = status
        return response
    }

    /// `GET /openapi.json`: the API described (public/openapi.json), open like /healthz.
    package func openAPI(_ request: HTTPRequest) throws -> HTTPResponse {
        guard let (bytes, _) = try files.load("openapi.json") else {
            return .error(404, code: "not_found", message: "openapi.json is missing from the public directory")
        }
        return .json(200, bytes)
    }

    package func asset(_ request: HTTPRequest) throws -> HTTPResponse {
        let path = request.parameters["path"] ?? ""
        if path.hasPrefix("api/") {
            return .error(404, code: "not_found", message: "no route for \(request.method) \(request.path)")
        }
        do {
            guard let (bytes, type) = try files.load(path) else {
                return .error(404, code: "not_found", message: "no file \(request.path)")
            }
            return HTTPResponse(status: 200, headers: [("Content-Type", type)], body: bytes)
        } catch is StaticFiles.Refused {
            return .error(400, code: "invalid_path", message: "that path is not allowed")
        }
    }

    /// What the page shows, read once per view; the HTML and the text are written from it.
    struct Model {
        struct ServiceRow {
            var service: ServiceConfig
            var summary: ServiceSummary
            var targets: [TargetView]
            /// What runs where: each target (in `targets`' order) with its version.
            var fleet: FleetVersions { FleetVersions(targets: targets.map { ($0.target, $0.state) }, versions: summary.versions) }
        }
        var services: [ServiceRow]
        var runs: [Run]
        var now: Date
    }

    func model() async throws -> Model {
        let names = config.services.map(\.name)
        let (summaries, runs) = try await reads.read { history in
            (try names.map { try history.serviceSummary($0) }, try history.runs(RunFilter(limit: 20)))
        }
        var rows: [Model.ServiceRow] = []
        for (service, summary) in zip(config.services, summaries) {
            let targets = await services.targetStates(for: service.name, running: summary.running, leftOut: summary.leftOut) ?? []
            rows.append(Model.ServiceRow(service: service, summary: summary, targets: targets))
        }
        return Model(services: rows, runs: runs, now: clock.now)
    }

    /// Where each target of a run got to, as a person reads it: `done` after its restore,
    /// the phase in hand while running, `failed in PHASE` when it stopped there.
    static func progress(of run: Run) -> [(target: String, text: String)] {
        run.latestStepPerTarget.map { step in
            switch step.status {
            case .failed: return (step.targetID, "failed in \(step.phase.rawValue)")
            case .running: return (step.targetID, "\(step.phase.rawValue)…")
            case .succeeded: return (step.targetID, step.phase == .restore ? "done" : "after \(step.phase.rawValue)")
            }
        }
    }

    static func duration(_ run: Run, now: Date) -> String {
        guard let started = run.startedAt else { return "" }
        return (run.finishedAt ?? now).since(started).readable
    }

    /// The live part of `/` (also `/?part=state`, which the page's script swaps in).
    func stateHTML(session: PageSession? = nil) async throws -> (html: String, title: String, icon: String) {
        let model = try await model()
        // The tab says it: what is rolling, or which service is short.
        let rolling = model.services.compactMap { row in row.summary.running.map { "\(row.service.name) \($0.version)" } }
        let short = model.services.filter { $0.targets.contains { $0.state == "left_out" } }.map(\.service.name)
        let icon = !rolling.isEmpty ? "running" : !short.isEmpty ? "failed" : "idle"
        var title = "rollgate"
        if !rolling.isEmpty { title = "▶ rolling \(rolling.joined(separator: ", ")) · rollgate" }
        if !short.isEmpty { title = "✗ \(short.joined(separator: ", ")) short · " + title }
        var html = "<section id=\"state\" aria-live=\"polite\" data-title=\"\(escape(title))\" data-icon=\"\(icon)\">\n" + capacityBanner(model.services, session)
        if config.isDemo {
            html += "<p class=\"demo\">Demo mode: simulated load balancer, harmless hooks. Try: <code>curl -X POST -d '{\"service\":\"demo\",\"version\":\"v2\"}' http://\(config.listen)/api/v1/deploys</code></p>\n"
        }
        html += "<h2>Services</h2>\n<div class=\"scroll\"><table id=\"services\">\n<tr><th scope=\"col\">service</th><th scope=\"col\">last good version</th><th scope=\"col\">now</th><th scope=\"col\">targets</th></tr>\n"
        for row in model.services {
            let summary = row.summary
            var now = "idle"
            if let run = summary.running {
                now = "rolling \(escape(run.version)) (<a href=\"/runs/\(run.id)\">run \(run.id)</a>)"
                now += "<div class=\"progress\">\(escape(RunProgress(run, targets: row.summary.runningPlanned ?? row.targets.count).text(now: model.now, plan: row.service.plan)))</div>"
                now += " " + button(.cancel, "Cancel run \(run.id)", [("run", "\(run.id)")], session)
            }
            if let lock = summary.lock, lock.holds(at: model.now) {
                now = "<strong>locked</strong> by \(escape(lock.lockedBy)): \(escape(lock.reason)) "
                    + button(.unlock, "Unlock \(row.service.name)", [("service", row.service.name)], session) + "; " + now
            }
            if summary.running == nil, case let out = row.targets.filter({ $0.state == "left_out" }).count, out > 0 {
                now += "; <strong class=\"status-failed\">\(out) target(s) left out</strong>"
            }
            if !summary.queued.isEmpty { now += "; queued: " + summary.queued.map { "<a href=\"/runs/\($0)\">run \($0)</a>" }.joined(separator: ", ") }
            let fleet = row.fleet
            let links = VersionLinks(row.service, githubAPI: config.githubAPI)
            let targets = zip(row.targets, fleet.entries).map { view, entry in
                let known = entry.version?.version
                var version = escape(known ?? "unknown")
                if let known, let links { version = "<a href=\"\(escape(links.commit(known)))\" class=\"commit\">\(version)</a>" }
                var text = "<span class=\"id\">\(escape(view.target.id))</span> <span class=\"version\">\(version)</span> <span class=\"state-\(escape(view.state))\">\(escape(view.state))</span>"
                if let left = view.leftOut, view.state == "left_out" {
                    text += " <span class=\"left-out-reason\">(\(escape(left.reason)))</span>"
                }
                return text
            }.joined(separator: ", ")
            html += "<tr><td data-label=\"service\">\(escape(row.service.name))</td><td data-label=\"last good\">\(escape(summary.lastGoodVersion ?? "none yet"))</td>"
            html += "<td data-label=\"now\">\(now)</td><td data-label=\"targets\">\(targets)"
            let attention = fleet.isMixed || fleet.serving < fleet.entries.count ? " attention" : ""
            html += "<div class=\"fleet\(attention)\">\(escape(fleet.summary))</div>"
            if summary.lastGoodVersion != nil, summary.running == nil {
                html += button(.rollback, "Roll back \(row.service.name)", [("service", row.service.name)], session)
            }
            html += "</td></tr>\n"
        }
        html += "</table></div>\n<h2>Recent runs</h2>\n<div class=\"scroll\"><table id=\"runs\">\n<tr><th scope=\"col\">run</th><th scope=\"col\">service</th><th scope=\"col\">version</th><th scope=\"col\">status</th><th scope=\"col\">created</th><th scope=\"col\">took</th><th scope=\"col\">asked by</th><th scope=\"col\">reason</th><th scope=\"col\">targets</th><th scope=\"col\">error</th></tr>\n"
        for run in model.runs {
            let targets = StatusPage.progress(of: run).map { "<span class=\"id\">\(escape($0.target))</span>: \(escape($0.text))" }.joined(separator: "; ")
            html += "<tr><td data-label=\"run\"><a href=\"/runs/\(run.id)\">\(run.id)</a></td><td data-label=\"service\">\(escape(run.service))</td>"
            html += "<td data-label=\"version\">\(versionHTML(run))</td>"
            html += "<td data-label=\"status\" class=\"status-\(run.status.rawValue)\">\(run.status.rawValue)</td><td data-label=\"created\">\(time(run.createdAt))</td>"
            html += "<td data-label=\"took\">\(StatusPage.duration(run, now: model.now))</td><td data-label=\"asked by\">\(escape(run.requestedBy))</td>"
            html += "<td data-label=\"reason\">\(escape(run.reason ?? ""))</td>"
            html += "<td data-label=\"targets\">\(targets)</td><td data-label=\"error\">\(escape(run.error ?? ""))</td></tr>\n"
        }
        html += "</table></div>\n</section>"
        return (html, title, icon)
    }

    /// What a run moves: its version, or for a restore run the target it puts back (no
    /// version moves).
    package static func what(_ run: Run) -> String {
        if case .restore(let target) = run.kind { return "restore \(target.id)" }
        return run.version + (label(run).map { " (\($0))" } ?? "")
    }

    /// A rollback says so: asked for (`rollback from v3`) or after a failure (`rolled back to v2`).
    static func label(_ run: Run) -> String? {
        if let from = run.rollbackFrom { return "rollback from \(from)" }
        if let to = run.rollbackTo { return "rolled back to \(to)" }
        return nil
    }

    /// A run's version as HTML: linked to its commit for a service mapped to GitHub or GitLab,
    /// with the rollback label.
    func versionHTML(_ run: Run) -> String {
        if case .restore = run.kind { return escape(StatusPage.what(run)) }
        var html = escape(run.version)
        if let links = config.service(named: run.service).flatMap({ VersionLinks($0, githubAPI: config.githubAPI) }) {
            html = "<a href=\"\(escape(links.commit(run.version)))\" class=\"commit\">\(html)</a>"
        }
        if let label = StatusPage.label(run) { html += " <span class=\"rollback\">↩ \(escape(label))</span>" }
        return html
    }

    /// `curl -H 'Accept: text/plain' HOST/` and `/status.txt`: the same state as a text table.
    func stateText(width: Int = 100) async throws -> String {
        let model = try await model()
        var rows = [["SERVICE", "LAST GOOD", "NOW", "LOCK", "FLEET"]]
        var targets: [[String]] = [["SERVICE", "TARGET", "VERSION", "STATE", "LEFT OUT BECAUSE"]]
        for row in model.services {
            var now = "idle"
            if let run = row.summary.running {
                now = "rolling \(run.version) (run \(run.id)): " + RunProgress(run, targets: row.summary.runningPlanned ?? row.targets.count).text(now: model.now, plan: row.service.plan)
            }
            if !row.summary.queued.isEmpty { now += "; queued \(row.summary.queued.map(String.init).joined(separator: ","))" }
            let lock = row.summary.lock.flatMap { $0.holds(at: model.now) ? "\($0.lockedBy): \($0.reason)" : nil } ?? "-"
            let fleet = row.fleet
            rows.append([row.service.name, row.summary.lastGoodVersion ?? "-", now, lock, fleet.summary])
            for (view, entry) in zip(row.targets, fleet.entries) {
                let version = entry.version?.version ?? "unknown"
                targets.append([row.service.name, "\(view.target)", version, view.state, view.state == "left_out" ? view.leftOut?.reason ?? "" : ""])
            }
        }
        var runs = [["RUN", "SERVICE", "VERSION", "STATUS", "CREATED", "TOOK", "ASKED BY", "REASON", "ERROR"]]
        for run in model.runs {
            runs.append(["\(run.id)", run.service, StatusPage.what(run), run.status.rawValue, Timestamp.format(run.createdAt),
                         StatusPage.duration(run, now: model.now), run.requestedBy, run.reason ?? "", run.error ?? ""])
        }
        // Lost capacity says what to do, as commands to paste.
        var next = ""
        for row in model.services {
            for view in row.targets where view.state == "left_out" {
                next += "next: \(row.service.name) is short of \(view.target.id): fix it, then `rollgate restore \(row.service.name) \(view.target.id)`,"
                    + " or `rollgate forget \(row.service.name) \(view.target.id)` if it is gone for good\n"
            }
        }
        return [table(rows, width: width), table(targets, width: width) + (next.isEmpty ? "" : "\n" + next), table(runs, width: width)].joined(separator: "\n")
    }

    /// `GET /runs/{id}`: the run's facts, each target's steps with durations, and its log.
    func runHTML(_ run: Run, lines: [LogLine], session: PageSession? = nil) -> String {
        var html = "<section id=\"run\" data-run=\"\(run.id)\" data-status=\"\(run.status.rawValue)\" data-title=\"\(escape(StatusPage.title(of: run)))\" data-icon=\"\(StatusPage.icon(of: run))\" aria-live=\"polite\">\n"
        // The title, where it is and why it failed stay in view while the log follows.
        html += "<div class=\"run-head\"><h2>Run \(run.id): \(escape(run.service)) \(escape(StatusPage.what(run))) <span class=\"status-\(run.status.rawValue)\">\(run.status.rawValue)</span></h2>"
        if run.status == .running {
            // How many targets the run's frozen plan holds.
            let planned = (try? history.plan(of: run.id).count).flatMap { $0 > 0 ? $0 : nil }
            html += "<p class=\"progress\">\(escape(RunProgress(run, targets: planned).text(now: clock.now, plan: config.service(named: run.service)?.plan)))</p>"
        }
        if let error = run.error, run.status == .failed { html += "<p class=\"status-failed head-error\">\(escape(error))</p>" }
        html += "</div>\n<dl>"
        if case .deploy = run.kind {
            html += "<dt>version</dt><dd>\(versionHTML(run))"
            // Where it came from: the compare view from the version it replaced.
            if let links = config.service(named: run.service).flatMap({ VersionLinks($0, githubAPI: config.githubAPI) }),
               let previous = run.rollbackFrom ?? (try? history.previousGoodVersion(service: run.service, before: run.id, otherThan: run.version)) ?? nil {
                html += " · <a href=\"\(escape(links.compare(from: previous, to: run.version)))\" class=\"compare\">changes since \(escape(previous))</a>"
            }
            html += "</dd>"
        }
        html += "<dt>asked by</dt><dd>\(escape(run.requestedBy))</dd>"
        if let reason = run.reason { html += "<dt>reason</dt><dd>\(escape(reason))</dd>" }
        html += "<dt>created</dt><dd>\(time(run.createdAt))</dd>"
        if let started = run.startedAt { html += "<dt>started</dt><dd>\(time(started))</dd>" }
        if let finished = run.finishedAt { html += "<dt>finished</dt><dd>\(time(finished))</dd>" }
        if let rolledBy = run.rolledBy { html += "<dt>rolled by</dt><dd>\(escape(rolledBy))</dd>" }
        html += "<dt>took</dt><dd>\(StatusPage.duration(run, now: clock.now))</dd>"
        if let outages = outageText(run) { html += "<dt>out of service</dt><dd id=\"out-of-service\">\(escape(outages))</dd>" }
        if let error = run.error { html += "<dt>error</dt><dd class=\"status-failed\">\(escape(error))\(failureCode(run).map { " <code>\($0)</code>" } ?? "")</dd>" }
        html += "</dl>\n"
        if !run.status.isTerminal {
            html += "<p class=\"run-actions\">" + button(.cancel, "Cancel run \(run.id)", [("run", "\(run.id)")], session)
            if run.status == .running, config.service(named: run.service)?.plan.canary != nil {
                html += " " + button(.promote, "Promote: end the canary bake", [("run", "\(run.id)")], session)
            }
            html += "</p>\n"
        }
        html += nextSteps(run, session: session)
        if let timeline = RunTimeline(run: run, now: clock.now).svg {
            html += "<h3>Timeline</h3>\n<div class=\"timeline-box scroll\">\(timeline)</div>\n\(RunTimeline.legend)\n"
        }
        html += "<h3>Targets</h3>\n<div class=\"scroll\"><table id=\"steps\">\n<tr><th scope=\"col\">target</th><th scope=\"col\">phase</th><th scope=\"col\">status</th><th scope=\"col\">started</th><th scope=\"col\">took</th><th scope=\"col\">error</th></tr>\n"
        for step in run.steps {
            let took = duration(step)
            html += "<tr class=\"step-\(step.status.rawValue)\"><td data-label=\"target\">\(escape(step.targetID))</td><td data-label=\"phase\">\(step.phase.rawValue)</td>"
            html += "<td data-label=\"status\" class=\"status-\(step.status.rawValue)\">\(step.status == .failed ? "✗ " : "")\(step.status.rawValue)</td>"
            html += "<td data-label=\"started\">\(time(step.startedAt))</td><td data-label=\"took\">\(took)</td><td data-label=\"error\">\(escape(step.error ?? ""))</td></tr>\n"
        }
        html += "</table></div>\n"
        html += "</section>\n<h3>Log</h3>\n<div id=\"log\" class=\"log\" data-after=\"\(lines.last?.seq ?? 0)\">"
        // While it runs every target is open; after, the targets that failed (the rest fold away).
        let failed = Set(run.steps.filter { $0.status == .failed }.map(\.targetID))
        html += FoldedLog(lines).html { run.status == .running || run.status == .queued || failed.contains($0) }
        html += "</div>"
        return html
    }

    /// A failed run's code (where it failed), as the API's `error_code` says it.
    func failureCode(_ run: Run) -> String? { run.status == .failed ? run.errorCode?.rawValue : nil }

    func runText(_ run: Run, lines: [LogLine], width: Int = 100) -> String {
        var text = "run \(run.id): \(run.service) \(StatusPage.what(run)) \(run.status.rawValue)\nasked by \(run.requestedBy)\(run.reason.map { ", because: \($0)" } ?? "")\n"
        text += "created \(Timestamp.format(run.createdAt)), started \(run.startedAt.map(Timestamp.format) ?? "-"), finished \(run.finishedAt.map(Timestamp.format) ?? "-")"
            + " (took \(StatusPage.duration(run, now: clock.now)))\n"
        if let rolledBy = run.rolledBy { text += "rolled by \(rolledBy)\n" }
        if let error = run.error { text += "error\(failureCode(run).map { " (\($0))" } ?? ""): \(error)\n" }
        if let outages = outageText(run) { text += "out of service: \(outages)\n" }
        text += nextStepsText(run)
        text += "\n" + table([["TARGET", "PHASE", "STATUS", "STARTED", "TOOK", "ERROR"]] + run.steps.map { step in
            [step.targetID, step.phase.rawValue, step.status.rawValue, Timestamp.format(step.startedAt),
             duration(step), step.error ?? ""]
        }, width: width)
        return text + "\n" + lines.map { "\(Timestamp.format($0.at)) \($0.targetID.map { "[\($0)] " } ?? "")\($0.text)" }.joined(separator: "\n") + "\n"
    }

    /// Each target's time out of service, then how long the service was short (at least one
    /// target out), which never exceeds the run's own time even when a batch overlaps:
    /// `web-1 1.8 s, web-2 2.1 s; short for 3.9 s`; with overlap `...; short for 2.2 s (3.9 s of
    /// target time)`; a target still out reads `web-3 out for 4.2 s so far`. Nil before any drain.
    func outageText(_ run: Run) -> String? {
        guard let out = OutOfService(run, now: clock.now) else { return nil }
        let parts = out.spans.map { span in
            span.stillOut ? "\(span.target.id) out for \(span.duration.readable) so far" : "\(span.target.id) \(span.duration.readable)"
        }
        var text = parts.joined(separator: ", ") + "; short for \(out.shortFor.readable)"
        if out.targetTime > out.shortFor + .milliseconds(1) { text += " (\(out.targetTime.readable) of target time)" }
        return text
    }

    /// How long a step took, or has taken so far.
    func duration(_ step: Step) -> String { max(.zero, (step.finishedAt ?? clock.now).since(step.startedAt)).readable }

    /// A `<time>` the script shows as "3 min ago" in local time; the exact UTC time on hover.
    func time(_ date: Date) -> String {
        let exact = Timestamp.format(date)
        return "<time datetime=\"\(exact)\" title=\"\(exact)\">\(exact)</time>"
    }

    /// Columns padded to their widest cell, within `width` columns: while a row would be wider,
    /// the widest column gives up a character (none below 4), and a cell longer than its column
    /// is cut with `…`.
    func table(_ rows: [[String]], width: Int = 100) -> String {
        let count = rows.first?.count ?? 0
        var widths = (0..<count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        let floors = (0..<count).map { column in min(widths[column], 4) }
        let separators = 2 * max(0, count - 1)
        while widths.reduce(0, +) + separators > width,
              let widest = widths.indices.filter({ widths[$0] > floors[$0] }).max(by: { widths[$0] < widths[$1] }) {
            widths[widest] -= 1
        }
        return rows.map { row in
            var line = row.enumerated().map { column, cell in
                let fitted = cell.count > widths[column] ? String(cell.prefix(max(0, widths[column] - 1))) + "…" : cell
                return fitted + String(repeating: " ", count: max(0, widths[column] - fitted.count))
            }.joined(separator: "  ")
            while line.last?.isWhitespace == true { line.removeLast() }
            return line
        }.joined(separator: "\n") + "\n"
    }
}

func escape(_ text: String) -> String {
    // By Unicode scalar, not by character: `<` followed by a combining mark is one Character
    // that equals no "<", and would pass unescaped.
    var out = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
        switch scalar {
        case "&": out.append(contentsOf: "&amp;".unicodeScalars)
        case "<": out.append(contentsOf: "&lt;".unicodeScalars)
        case ">": out.append(contentsOf: "&gt;".unicodeScalars)
        case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
        case "'": out.append(contentsOf: "&#39;".unicodeScalars)
        default: out.append(scalar)
        }
    }
    return String(out)
}
