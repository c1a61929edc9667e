import Logging
import MicroHTTP
import Rollout
import SQLiteStore

/// The HTTP API under /api/v1, the health check and the status page.
public struct API: Sendable {
    let store: Store
    let config: Config
    let services: ServiceDirectory
    let clock: any RolloutClock
    /// Tells the dispatcher a run was queued; returns at once.
    let wakeDispatcher: @Sendable () -> Void
    let statusPage: StatusPage
    let logger: Logger

    public var router: Router {
        var router = Router()
        // Store reads and writes never wait on anything slow: answered on MHD's thread.
        router.post("/api/v1/deploys", immediate: { self.guarded($0, self.deploy) })
        router.get("/api/v1/runs", immediate: { self.guarded($0, self.listRuns) })
        router.get("/api/v1/runs/{id}", immediate: { self.guarded($0, self.showRun) })
        router.get("/api/v1/runs/{id}/logs", immediate: { self.guarded($0, self.logs) })
        router.post("/api/v1/runs/{id}/cancel", immediate: { self.guarded($0, self.cancel) })
        router.get("/healthz", immediate: { _ in API.healthy })
        router.get("/metrics", immediate: { self.guarded($0, self.metrics) })
        router.get("/api/v1/healthz", immediate: { _ in API.healthy })
        // These ask the load balancer, which may be a network call away.
        router.get("/api/v1/services") { await self.guarded($0, self.listServices) }
        router.get("/") { await self.guarded($0, self.statusPage.render) }
        router.get("/{path...}", immediate: { self.guarded($0, self.statusPage.asset) })
        return router
    }

    /// An error a handler throws to answer with a 4xx.
    struct Refusal: Error {
        let status: Int
        let code: String
        let message: String
    }

    static let healthy = HTTPResponse.json(200, JSONValue.object([("status", .string("ok"))]).bytes)

    private func guarded(_ request: HTTPRequest, _ handler: (HTTPRequest) async throws -> HTTPResponse) async -> HTTPResponse {
        do {
            return try await handler(request)
        } catch {
            return answer(error, to: request)
        }
    }

    private func guarded(_ request: HTTPRequest, _ handler: (HTTPRequest) throws -> HTTPResponse) -> HTTPResponse {
        do {
            return try handler(request)
        } catch {
            return answer(error, to: request)
        }
    }

    /// A refusal is the client's 4xx; anything else is logged and a 500 without details.
    private func answer(_ error: Error, to request: HTTPRequest) -> HTTPResponse {
        if let refusal = error as? Refusal {
            return .error(refusal.status, code: refusal.code, message: refusal.message)
        }
        logger.error("request failed", metadata: ["http.path": "\(request.path)", "error": "\(error)"])
        return .error(500, code: "internal", message: "the server could not answer this request; see its log")
    }

    // MARK: - Auth

    /// Who is asking, for writes. The demo needs no token; a configured server always does.
    func authorize(_ request: HTTPRequest) throws -> String {
        if config.isDemo { return "demo" }
        guard let header = request.header("authorization"), header.hasPrefix("Bearer ") else {
            throw Refusal(status: 401, code: "unauthorized", message: "this endpoint needs Authorization: Bearer <token>")
        }
        let presented = Array(header.dropFirst("Bearer ".count).utf8)
        for token in config.apiTokens where constantTimeEqual(presented, Array(token.secret.utf8)) {
            return "api:\(token.name)"
        }
        throw Refusal(status: 401, code: "unauthorized", message: "the bearer token is not valid")
    }

    // MARK: - Handlers

    func deploy(_ request: HTTPRequest) throws -> HTTPResponse {
        let requester = try authorize(request)
        guard let body = JSONValue.parse(request.body) else {
            throw Refusal(status: 400, code: "invalid_json", message: "the body must be a JSON object like {\"service\":\"web\",\"version\":\"v42\"}")
        }
        guard case .object = body else {
            throw Refusal(status: 400, code: "invalid_json", message: "the body must be a JSON object, not \(body.text.prefix(20))")
        }
        let service = try field(body, "service", required: true)!
        let version = try field(body, "version", required: true)!
        let reason = try field(body, "reason", required: false)
        guard config.service(named: service) != nil else {
            throw Refusal(status: 404, code: "unknown_service",
                          message: "no service named \(service); configured: \(config.services.map(\.name).joined(separator: ", "))")
        }
        guard Version.isValid(version) else {
            throw Refusal(status: 422, code: "invalid_version",
                          message: "version must be 1-128 characters of A-Z a-z 0-9 . _ / + -")
        }
        if let reason, reason.utf8.count > 1000 {
            throw Refusal(status: 422, code: "invalid_reason", message: "reason is longer than 1000 bytes")
        }
        let key = request.header("idempotency-key")
        if let key, key.isEmpty || key.utf8.count > 200 {
            throw Refusal(status: 400, code: "invalid_idempotency_key", message: "Idempotency-Key must be 1-200 characters")
        }
        switch try store.enqueue(service: service, version: version, reason: reason, requestedBy: requester,
                                 idempotencyKey: key, at: clock.now) {
        case .created(let run, let superseded):
            logger.info("deploy queued", metadata: ["run.id": "\(run.id)", "service": "\(service)", "version": "\(version)",
                                                    "superseded": "\(superseded)"])
            wakeDispatcher()
            var response = HTTPResponse.json(202, JSONWriter.bytes { $0.run(run) })
            response.headers.append(("Location", "/api/v1/runs/\(run.id)"))
            return response
        case .replayed(let run):
            var response = HTTPResponse.json(202, JSONWriter.bytes { $0.run(run) })
            response.headers.append(("Idempotent-Replayed", "true"))
            return response
        case .keyConflict(let run):
            throw Refusal(status: 409, code: "idempotency_key_reused",
                          message: "this Idempotency-Key was used for run \(run.id) (\(run.service) \(run.version))")
        }
    }

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
        let runs = try store.runs(filter)
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
        return .json(200, JSONWriter.bytes { $0.run(run) })
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
        var limit = 1000
        if let text = request.query["limit"] {
            guard let value = Int(text), (1...5000).contains(value) else {
                throw Refusal(status: 400, code: "invalid_limit", message: "limit must be a whole number from 1 to 5000")
            }
            limit = value
        }
        let lines = try store.logs(run: run.id, after: after, limit: limit)
        return .json(200, JSONWriter.bytes { w in
            w.object { w in
                w.key("run_id"); w.int(run.id)
                w.key("status"); w.string(run.status.rawValue)
                w.key("lines"); w.array { w in for line in lines { w.logLine(line) } }
                w.key("next_after"); w.int(lines.last?.seq ?? after)
            }
        })
    }

    func cancel(_ request: HTTPRequest) throws -> HTTPResponse {
        _ = try authorize(request)
        let run = try findRun(request)
        guard !run.status.isTerminal else {
            throw Refusal(status: 409, code: "run_finished", message: "run \(run.id) is already \(run.status.rawValue)")
        }
        guard let updated = try store.requestCancel(run.id, at: clock.now) else {
            throw Refusal(status: 404, code: "run_not_found", message: "no run \(run.id)")
        }
        return .json(202, JSONWriter.bytes { $0.run(updated) })
    }

    /// Prometheus text: runs by service and status, and which services are rolling now.
    func metrics(_ request: HTTPRequest) throws -> HTTPResponse {
        var text = "# HELP rollgate_runs Runs by service and status.\n# TYPE rollgate_runs gauge\n"
        let counts = try store.runCounts()
        for service in config.services {
            for status in RunStatus.allCases {
                let count = counts.first { $0.service == service.name && $0.status == status }?.count ?? 0
                text += "rollgate_runs{service=\"\(service.name)\",status=\"\(status.rawValue)\"} \(count)\n"
            }
        }
        text += "# HELP rollgate_rolling 1 while a run of the service is rolling.\n# TYPE rollgate_rolling gauge\n"
        for service in config.services {
            let rolling = counts.contains { $0.service == service.name && $0.status == .running }
            text += "rollgate_rolling{service=\"\(service.name)\"} \(rolling ? 1 : 0)\n"
        }
        return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", text: text)
    }

    func listServices(_ request: HTTPRequest) async throws -> HTTPResponse {
        var described: [(ServiceConfig, ServiceSummary, [(target: Target, health: TargetHealth)]?)] = []
        for service in config.services {
            let summary = try store.serviceSummary(service.name)
            described.append((service, summary, await services.targetStates(for: service.name, running: summary.running)))
        }
        return .json(200, JSONWriter.bytes { w in
            w.object { w in
                w.key("services"); w.array { w in
                    for (service, summary, targets) in described { w.service(service, summary, targets) }
                }
            }
        })
    }

    // MARK: - Helpers

    func findRun(_ request: HTTPRequest) throws -> Run {
        guard let text = request.parameters["id"], let id = Int64(text), id > 0 else {
            throw Refusal(status: 400, code: "invalid_run_id", message: "a run id is a positive whole number")
        }
        guard let run = try store.run(id) else {
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
        return text
    }
}

/// Compares secrets in time that depends only on the presented length.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var difference = UInt8(a.count == b.count ? 0 : 1)
    for index in 0..<a.count { difference |= a[index] ^ (index < b.count ? b[index] : 0) }
    return difference == 0
}
