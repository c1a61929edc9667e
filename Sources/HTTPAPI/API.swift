import Configuration
import Integrations
import LoadBalancing
import Monitoring
import Page
import WireFormat
import Logging
import MicroHTTP
import Rollout

/// The HTTP API under /api/v1, the health check and the status page.
/// A class, not a struct: every route's closure holds one reference to it, rather than a copy
/// of all its fields made (and released) on each request.
public final class API: Sendable {
    /// Reads where the caller may block: immediate routes run on the HTTP server's threads.
    let history: any RunHistory
    /// Reads from Swift's pool (async routes): on the store's own threads.
    let reads: any HistoryReads
    /// The queue's writes: on the store's own threads.
    let requests: any DeployRequests
    let config: Config
    let services: ServiceDirectory
    let clock: any RolloutClock
    /// Tells the dispatcher a run was queued; returns at once.
    let wakeDispatcher: @Sendable () -> Void
    let statusPage: StatusPage
    let health: StoreHealth
    let shutdown: ShutdownState
    /// The runs this replica's dispatcher holds (named by `/healthz`).
    let held: HeldRuns
    let rateLimiter: WriteRateLimiter
    let streams = StreamCount()
    package let tails = StreamTails()
    let telemetry: Telemetry
    let logger: Logger
    let hosts: AllowedHosts
    let authFailures = AuthFailures()
    /// Keys the demo's page form token (the demo has no sign-in): new each start, so a page
    /// from an earlier process must be reloaded before it can act.
    let demoFormKey: [UInt8] = (0..<32).map { _ in UInt8.random(in: 0...255) }

    package init(history: any RunHistory, reads: any HistoryReads, requests: any DeployRequests, config: Config, services: ServiceDirectory, clock: any RolloutClock,
         wakeDispatcher: @escaping @Sendable () -> Void, statusPage: StatusPage, health: StoreHealth,
         shutdown: ShutdownState, held: HeldRuns, rateLimiter: WriteRateLimiter, telemetry: Telemetry, logger: Logger) {
        self.history = history
        self.reads = reads
        self.requests = requests
        self.config = config
        self.services = services
        self.clock = clock
        self.wakeDispatcher = wakeDispatcher
        self.statusPage = statusPage
        self.health = health
        self.shutdown = shutdown
        self.held = held
        self.rateLimiter = rateLimiter
        self.telemetry = telemetry
        self.logger = logger
        self.hosts = AllowedHosts(config: config)
        healthy = HTTPResponse.json(200, JSONValue.object([("status", .string("ok")), ("database", .string("writable")),
                                                          ("replica", .string(history.replica)), ("runs", .array([]))]).bytes).reused()
    }

    public var router: Router {
        var router = Router()
        // Reads never wait (WAL readers): answered on MHD's thread. Writes may wait on the
        // database's write lock (another process, a busy roll): they run on the store's own
        // threads, so MHD's threads keep answering /healthz and reads meanwhile.
        router.post("/api/v1/deploys") { await self.writing($0, self.deploy) }
        router.get("/api/v1/runs", immediate: { self.guarded($0, self.readable(self.listRuns)) })
        router.get("/api/v1/runs/{id}", immediate: { self.guarded($0, self.readable(self.showRun)) })
        router.get("/api/v1/runs/{id}/logs", immediate: { self.guarded($0, self.readable(self.logs)) })
        router.post("/api/v1/runs/{id}/cancel") { await self.writing($0, self.cancel) }
        router.post("/api/v1/runs/{id}/promote") { await self.writing($0, self.promote) }
        router.post("/api/v1/services/{name}/rollback") { await self.writing($0, self.rollback) }
        router.get("/api/v1/events", immediate: { self.guarded($0, self.readable(self.events)) })
        router.get("/api/v1/runs/{id}/deliveries", immediate: { self.guarded($0, self.readable(self.deliveries)) })
        router.post("/api/v1/services/{name}/lock") { await self.writing($0, self.lock) }
        router.delete("/api/v1/services/{name}/lock") { await self.writing($0, self.unlock) }
        router.post("/api/v1/services/{name}/targets/{target}/restore") { await self.writing($0, self.restore) }
        router.post("/api/v1/services/{name}/targets/{target}/forget") { await self.writing($0, self.forget) }
        router.post("/api/v1/hooks/github") { await self.writing($0, self.github) }
        router.post("/api/v1/hooks/gitlab") { await self.writing($0, self.gitlab) }
        router.post("/api/v1/hooks/generic") { await self.writing($0, self.generic) }
        router.post("/api/v1/hooks/slack") { await self.writing($0, self.slack) }
        router.get("/healthz", immediate: { _ in self.healthz() })
        router.get("/metrics", immediate: { self.guarded($0, self.readable(self.metrics)) })
        router.get("/api/v1/healthz", immediate: { _ in self.healthz() })
        // These ask the load balancer, which may be a network call away.
        router.get("/api/v1/services") { request in
            await self.guarded(request) { request in try self.mayRead(request); return try await self.listServices(request) }
        }
        router.get("/api/v1/services/{name}/plan") { request in
            await self.guarded(request) { request in try self.mayRead(request); return try await self.servicePlan(request) }
        }
        router.get("/") { request in
            await self.guarded(request) { request in
                try self.mayRead(request)
                return try await self.statusPage.render(request, session: self.pageSession(request))
            }
        }
        router.get("/status.txt") { request in
            await self.guarded(request) { request in try self.mayRead(request); return try await self.statusPage.renderText(request) }
        }
        router.get("/runs/{id}", immediate: { self.guarded($0, self.readable { try self.statusPage.renderRun($0, session: self.pageSession($0)) }) })
        router.post("/actions/{action}") { request in await self.guarded(request) { await self.pageAction($0) } }
        router.get("/openapi.json", immediate: { self.guarded($0, self.statusPage.openAPI) })
        router.get("/login", immediate: { self.guarded($0, self.loginPage) })
        router.post("/login", immediate: { self.guarded($0, self.login) })
        router.post("/logout", immediate: { self.guarded($0, self.logout) })
        // The page's script and style hold no data: open, so the sign-in page can use them.
        router.get("/{path...}", immediate: { self.guarded($0, self.statusPage.asset) })
        let notFound = router.fallback
        router.fallback = { request in self.guarded(request) { notFound($0) } }
        return router
    }

    /// An error a handler throws to answer with a 4xx.
    struct Refusal: Error {
        let status: Int
        let code: String
        let message: String
        /// Seconds, for 429 and 503.
        var retryAfter: Int? = nil
        /// What an API client can do about it (`pass "force": true ...`), apart from the fact.
        var hint: String? = nil
    }

    /// `/healthz` while all is well, made once (it is asked every few seconds by every
    /// load balancer in front): the status and which replica answered.
    let healthy: HTTPResponse

    private func guarded(_ request: HTTPRequest, _ handler: (HTTPRequest) async throws -> HTTPResponse) async -> HTTPResponse {
        let started = ContinuousClock.now
        let response: HTTPResponse
        do {
            try admit(request)
            response = try await handler(request)
        } catch {
            response = answer(error, to: request)
        }
        answered(request, response, since: started)
        return API.secured(response)
    }

    private func guarded(_ request: HTTPRequest, _ handler: (HTTPRequest) throws -> HTTPResponse) -> HTTPResponse {
        let started = ContinuousClock.now
        let response: HTTPResponse
        do {
            try admit(request)
            response = try handler(request)
        } catch {
            response = answer(error, to: request)
        }
        answered(request, response, since: started)
        return API.secured(response)
    }

    /// A write: admitted on the task, then run on the store's own threads (never MHD's, never
    /// Swift's cooperative pool), since it may wait for the database's write lock.
    private func writing(_ request: HTTPRequest, _ handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) async -> HTTPResponse {
        await guarded(request) { request in try await handler(request) }
    }

    /// Reads from an async route, on the store's own threads.
    func read<T: Sendable>(_ body: @escaping @Sendable (any RunHistory) throws -> T) async throws -> T {
        try await reads.read(body)
    }

    /// What every request passes before its handler: a Host that names this server, no
    /// control character in a header, a client not locked out for failed authentications.
    private func admit(_ request: HTTPRequest) throws {
        try refuseForeignHost(request)
        try API.refuseControlCharacters(request)
        try refuseLockedOutClient(request)
    }

    /// Every answer says not to sniff its type; pages (anything but JSON) also get a content
    /// security policy (script and style from this server only, never framed) and a referrer
    /// policy that keeps run links inside.
    static func secured(_ response: HTTPResponse) -> HTTPResponse {
        var response = response
        response.headers.append(("X-Content-Type-Options", "nosniff"))
        if response.header("content-type")?.hasPrefix("application/json") != true {
            response.headers.append(("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"))
            response.headers.append(("X-Frame-Options", "DENY"))
            response.headers.append(("Referrer-Policy", "same-origin"))
        }
        return response
    }

    /// Counts the answer by route and status and, with `--access-log`, logs it: method, path
    /// (no query, never a header), status, duration, run id.
    func answered(_ request: HTTPRequest, _ response: HTTPResponse, since started: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - started
        telemetry.httpAnswered(route: request.route ?? "unmatched", method: request.method, status: response.status, duration: elapsed)
        guard config.accessLog else { return }
        var metadata: Logger.Metadata = [
            "http.method": "\(request.method)", "http.path": "\(request.path)", "http.status": "\(response.status)",
            "duration_ms": "\(Double(elapsed.components.attoseconds / 1_000_000_000_000) / 1000 + Double(elapsed.components.seconds) * 1000)",
        ]
        if let id = request.parameters["id"] { metadata["run.id"] = "\(id)" }
        logger.info("http", metadata: metadata)
    }

    /// A header holding a control character (NUL included; a tab is allowed) is refused, not
    /// truncated: nothing that could start a deploy carries one into a record or a hook.
    static func refuseControlCharacters(_ request: HTTPRequest) throws {
        for (name, value) in request.headers where hasControlCharacter(value, allowingTab: true) {
            throw Refusal(status: 400, code: "invalid_header", message: "header \(name) contains a control character")
        }
    }

    /// A refusal is the client's 4xx; anything else is logged and a 500 without details.
    func answer(_ error: Error, to request: HTTPRequest) -> HTTPResponse {
        if error is StatusPage.WidthRefused {
            return .error(400, code: "invalid_width", message: "width must be a whole number of columns from 20 to 1000")
        }
        if let refusal = error as? Refusal {
            // A browser asking for a page it may not read is sent to sign in.
            if refusal.status == 401, request.method == "GET", request.acceptsHTML, !request.path.hasPrefix("/api/") {
                return HTTPResponse(status: 303, headers: [("Location", "/login"), ("Cache-Control", "no-store")])
            }
            var response = HTTPResponse.error(refusal.status, code: refusal.code, message: refusal.message, hint: refusal.hint)
            if let seconds = refusal.retryAfter ?? (refusal.status == 503 ? 5 : nil) {
                response.headers.append(("Retry-After", "\(seconds)"))
            }
            return response
        }
        if let locked = error as? Locked {
            return .json(423, JSONWriter.bytes { w in
                w.object { w in
                    w.key("error"); w.object { w in
                        w.key("code"); w.string("service_locked")
                        w.key("message"); w.string("\(locked.lock.service) is locked by \(locked.lock.lockedBy): \(locked.lock.reason)"
                            + (locked.lock.expiresAt.map { " (until \(Timestamp.format($0)))" } ?? " (until unlocked)"))
                        w.key("hint"); w.string("pass \"wait_for_lock\": true to queue the deploy until the lock ends")
                    }
                    w.key("lock"); w.lock(locked.lock)
                }
            })
        }
        // The store's port error, whichever engine: the engine's words reach the client, the
        // statement only the server's log.
        if let fault = error as? any StoreFault {
            logger.error("database request failed", metadata: ["http.path": "\(request.path)", "error": "\(error)"])
            guard fault.mayPassLater else {
                return .error(500, code: "database_refused", message: "the database refused this request (\(fault.summary)); nothing was changed; see the server's log")
            }
            health.failed(error, at: clock.now)
            var response = HTTPResponse.error(503, code: "database_unavailable",
                                              message: "the database cannot take this request now (\(fault.summary)); nothing was changed, retry shortly")
            response.headers.append(("Retry-After", "5"))
            return response
        }
        logger.error("request failed", metadata: ["http.path": "\(request.path)", "error": "\(error)"])
        return .error(500, code: "internal", message: "the server could not answer this request; see its log")
    }

    // MARK: - Handlers

    func listRuns(_ request: HTTPRequest) throws -> HTTPResponse {
        var filter = RunFilter()
        if let service = request.query["service"] { filter.service = service }
        if let status = request.query["status"] {
            guard let parsed = RunStatus(rawValue: status) else {
                throw Refusal(status: 400, code: "invalid_status",
                              message: "status must be one of \(RunStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            filter.status = parsed
        }
        if let limit = request.query["limit"] {
            guard let value = Int(limit), (1...200).contains(value) else {
                throw Refusal(status: 400, code: "invalid_limit", message: "limit must be a whole number from 1 to 200")
            }
            filter.limit = value
        }
        if let cursor = request.query["cursor"] {
            guard let value = Int64(cursor), value > 0 else {
                throw Refusal(status: 400, code: "invalid_cursor", message: "cursor must be the next_cursor of a previous page")
            }
            filter.before = value
        }
        let runs = try history.runs(filter)
        let next = runs.count == filter.limit ? runs.last.map { String($0.id) } : nil
        return .json(200, JSONWriter.bytes { w in
            w.object { w in
                w.key("runs"); w.array { w in for run in runs { w.run(run) } }
                w.key("next_cursor"); w.string(next)
            }
        })
    }

    func showRun(_ request: HTTPRequest) throws -> HTTPResponse {
        let run = try findRun(request)
        // Only a failed or cancelled run has next steps: the others read nothing more.
        let steps = NextStep.mayFollow(run) ? NextStep.after(run, in: try history.serviceSummary(run.service)) : []
        // A running run says how far it is against its frozen plan; the others read nothing more.
        var progress: (done: Int, total: Int, text: String)?
        if run.status == .running {
            let planned = try history.plan(of: run.id).count
            let made = RunProgress(run, targets: planned > 0 ? planned : nil)
            progress = (made.done, made.total, made.text(now: clock.now, plan: config.service(named: run.service)?.plan))
        }
        return .json(200, JSONWriter.bytes { $0.run(run, publicURL: self.config.publicURL, nextSteps: steps, progress: progress) })
    }

    func logs(_ request: HTTPRequest) throws -> HTTPResponse {
        let run = try findRun(request)
        var after: Int64 = 0
        if let text = request.query["after"] {
            guard let value = Int64(text), value >= 0 else {
                throw Refusal(status: 400, code: "invalid_after", message: "after must be a log sequence number (0 or more)")
            }
            after = value
        }
        if request.header("accept")?.contains("text/event-stream") == true {
            // Last-Event-ID (a reconnecting EventSource) resumes right after the last line seen.
            if let last = request.header("last-event-id") {
                guard let value = Int64(last), value >= 0 else {
                    throw Refusal(status: 400, code: "invalid_last_event_id", message: "Last-Event-ID must be a log sequence number")
                }
                after = max(after, value)
            }
            return try logStream(of: run.id, after: after)
        }
        var limit = 1000
        if let text = request.query["limit"] {
            guard let value = Int(text), (1...5000).contains(value) else {
                throw Refusal(status: 400, code: "invalid_limit", message: "limit must be a whole number from 1 to 5000")
            }
            limit = value
        }
        let lines = try history.logs(run: run.id, after: after, limit: limit)
        return .json(200, JSONWriter.bytes { w in
            w.object { w in
                w.key("run_id"); w.int(run.id)
                w.key("status"); w.string(run.status.rawValue)
                w.key("lines"); w.array { w in for line in lines { w.logLine(line) } }
                w.key("next_after"); w.int(lines.last?.seq ?? after)
            }
        })
    }

    func cancel(_ request: HTTPRequest) async throws -> HTTPResponse {
        _ = try authorize(request, scope: .deploy)
        let run = try await findRunAsync(request)
        guard !run.status.isTerminal else {
            throw Refusal(status: 409, code: "run_finished", message: "run \(run.id) is already \(run.status.rawValue)")
        }
        guard let updated = try await requests.requestCancel(run.id, at: clock.now) else {
            throw Refusal(status: 404, code: "run_not_found", message: "no run \(run.id)")
        }
        return .json(202, JSONWriter.bytes { $0.run(updated) })
    }

    /// `POST /api/v1/runs/{id}/promote`: ends the run's canary bake now (the rest follow at
    /// once); a run that is not baking yet ends its bake as soon as it begins.
    func promote(_ request: HTTPRequest) async throws -> HTTPResponse {
        _ = try authorize(request, scope: .deploy)
        let run = try await findRunAsync(request)
        guard config.service(named: run.service)?.plan.canary != nil else {
            throw Refusal(status: 409, code: "no_canary", message: "\(run.service) has no canary: there is no bake to end")
        }
        let id = run.id
        guard try await requests.requestPromote(id), let updated = try await read({ try $0.run(id) }) else {
            throw Refusal(status: 409, code: "run_not_running", message: "run \(run.id) is \(run.status.rawValue): only a running run can be promoted")
        }
        logger.info("promote requested", metadata: ["run.id": "\(run.id)"])
        return .json(202, JSONWriter.bytes { $0.run(updated) })
    }

    /// `POST /api/v1/services/{name}/rollback`: queues a deploy of the last good version
    /// before the current one (`{"reason"?}`), as any deploy (lock, queue, supersede).
    func rollback(_ request: HTTPRequest) async throws -> HTTPResponse {
        let caller = try caller(request)
        let name = request.parameters["name"] ?? ""
        try knownService(name)
        let body = request.body.isEmpty ? JSONValue.object([]) : try strictObject(request.body, allowed: ["reason", "wait_for_lock"])
        let reason = try field(body, "reason", required: false)
        guard let current = try await read({ try $0.serviceSummary(name).lastGoodVersion }) else {
            throw Refusal(status: 409, code: "nothing_to_roll_back", message: "\(name) has no succeeded deploy yet")
        }
        guard let previous = try await read({ try $0.previousGoodVersion(service: name, before: Int64.max, otherThan: current) }) else {
            throw Refusal(status: 409, code: "nothing_to_roll_back", message: "\(name) has no good version before \(current)")
        }
        let outcome = try await enqueueDeploy(service: name, version: previous,
                                        reason: reason ?? "rollback from \(current) to \(previous)",
                                        requestedBy: caller.name, key: nil, waitForLock: try flag(body, "wait_for_lock"),
                                        rollbackFrom: current)
        var response = HTTPResponse.json(202, JSONWriter.bytes { $0.run(outcome.run, publicURL: config.publicURL) })
        response.headers.append(("Location", "/api/v1/runs/\(outcome.run.id)"))
        return response
    }

    func listServices(_ request: HTTPRequest) async throws -> HTTPResponse {
        var described: [(ServiceConfig, ServiceSummary, [TargetView]?)] = []
        let names = config.services.map(\.name)
        let summaries = try await read { history in try names.map { try history.serviceSummary($0) } }
        for (service, summary) in zip(config.services, summaries) {
            described.append((service, summary, await services.targetStates(for: service.name, running: summary.running,
                                                                             leftOut: summary.leftOut)))
        }
        let now = clock.now
        return .json(200, JSONWriter.bytes { w in
            w.object { w in
                w.key("services"); w.array { w in
                    for (service, summary, targets) in described { w.service(service, summary, targets, now: now) }
                }
            }
        })
    }

    // MARK: - Helpers

    /// A deploy refused because its service is locked (423).
    struct Locked: Error { let lock: ServiceLock }

    @discardableResult
    func knownService(_ name: String) throws -> ServiceConfig {
        guard let service = config.service(named: name) else {
            throw Refusal(status: 404, code: "unknown_service",
                          message: "no service named \(name); configured: \(config.services.map(\.name).joined(separator: ", "))")
        }
        return service
    }

    func flag(_ body: JSONValue, _ name: String) throws -> Bool {
        guard let value = body[name], !value.isNull else { return false }
        guard case .bool(let flag) = value else {
            throw Refusal(status: 422, code: "invalid_field", message: "\(name) must be true or false")
        }
        return flag
    }

    func findRun(_ request: HTTPRequest) throws -> Run {
        guard let text = request.parameters["id"], let id = Int64(text), id > 0 else {
            throw Refusal(status: 400, code: "invalid_run_id", message: "a run id is a positive whole number")
        }
        guard let run = try history.run(id) else {
            throw Refusal(status: 404, code: "run_not_found", message: "no run \(id)")
        }
        return run
    }

    /// `findRun` from an async route.
    func findRunAsync(_ request: HTTPRequest) async throws -> Run {
        guard let text = request.parameters["id"], let id = Int64(text), id > 0 else {
            throw Refusal(status: 400, code: "invalid_run_id", message: "a run id is a positive whole number")
        }
        guard let run = try await read({ try $0.run(id) }) else {
            throw Refusal(status: 404, code: "run_not_found", message: "no run \(id)")
        }
        return run
    }

    func field(_ body: JSONValue, _ name: String, required: Bool) throws -> String? {
        guard let value = body[name], !value.isNull else {
            if required { throw Refusal(status: 422, code: "missing_field", message: "\(name) is required") }
            return nil
        }
        guard let text = value.string else {
            throw Refusal(status: 422, code: "invalid_field", message: "\(name) must be a string")
        }
        if required && text.isEmpty { throw Refusal(status: 422, code: "missing_field", message: "\(name) must not be empty") }
        try refuseUnreadable(text, named: name, code: "invalid_field")
        return text
    }

    /// Text people will read (a field, a reason) holds no control character (NUL included)
    /// and no bidirectional control: refused (422 with `code`), never cleaned.
    func refuseUnreadable(_ text: String, named name: String, code: String) throws {
        if hasControlCharacter(text) {
            throw Refusal(status: 422, code: code, message: "\(name) contains a control character")
        }
        if text.unicodeScalars.contains(where: VisibleText.isBidiControl) {
            throw Refusal(status: 422, code: code,
                          message: "\(name) contains a bidirectional control character (U+202A-202E, U+2066-2069, U+200E/F, U+061C), which reorders what people read")
        }
    }
}

/// A control character (NUL included; a tab only where `allowingTab` is false): refused in
/// every field and header, never truncated.
func hasControlCharacter(_ text: String, allowingTab: Bool = false) -> Bool {
    text.unicodeScalars.contains { ($0.value < 0x20 && !(allowingTab && $0 == "\t")) || $0.value == 0x7F }
}

