import MicroHTTP
import Rollout
import SQLiteStore

/// `GET /`: `public/index.html` with the current state rendered into it, so `curl` prints
/// readable state without JavaScript; in a browser, `status.js` keeps it up to date.
struct StatusPage: Sendable {
    let files: StaticFiles
    let store: Store
    let config: Config
    let services: ServiceDirectory
    let clock: any RolloutClock

    static let placeholder = "<!-- rollgate:state -->"

    func render(_ request: HTTPRequest) async throws -> HTTPResponse {
        let state = try await stateHTML()
        guard let (bytes, _) = try files.load("index.html") else {
            // No public/ directory: the state alone still answers.
            return HTTPResponse(status: 200, contentType: "text/html; charset=utf-8",
                                text: "<!doctype html><title>rollgate</title>\n" + state)
        }
        let page = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: StatusPage.placeholder, with: state)
        var response = HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", text: page)
        response.headers.append(("Cache-Control", "no-store"))
        return response
    }

    /// `GET /openapi.json`: the API described (public/openapi.json), open like /healthz.
    func openAPI(_ request: HTTPRequest) throws -> HTTPResponse {
        guard let (bytes, _) = try files.load("openapi.json") else {
            return .error(404, code: "not_found", message: "openapi.json is missing from the public directory")
        }
        return .json(200, bytes)
    }

    func asset(_ request: HTTPRequest) throws -> HTTPResponse {
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

    func stateHTML() async throws -> String {
        var html = "<section id=\"state\">\n"
        if config.isDemo {
            html += "<p class=\"demo\">Demo mode: simulated load balancer, harmless hooks. Try: <code>curl -X POST -d '{\"service\":\"demo\",\"version\":\"v2\"}' http://\(config.listen)/api/v1/deploys</code></p>\n"
        }
        html += "<h2>Services</h2>\n<table id=\"services\">\n<tr><th>service</th><th>last good version</th><th>now</th><th>targets</th></tr>\n"
        for service in config.services {
            let summary = try store.serviceSummary(service.name)
            var now = "idle"
            if let lock = summary.lock, lock.holds(at: clock.now) {
                now = "locked by \(escape(lock.lockedBy)): \(escape(lock.reason)); " + now
            }
            if let run = summary.running {
                now = "rolling \(escape(run.version)) (run <a href=\"/api/v1/runs/\(run.id)\">\(run.id)</a>)"
                if let step = run.steps.last { now += ": \(escape(step.targetID)) \(step.phase.rawValue)" }
            }
            if !summary.queued.isEmpty { now += "; queued: \(summary.queued.map(String.init).joined(separator: ", "))" }
            let targets = (await services.targetStates(for: service.name, running: summary.running, leftOut: summary.leftOut) ?? [])
                .map { view in
                    var text = "\(escape(view.target.id)) <span class=\"state-\(escape(view.state))\">\(escape(view.state))</span>"
                    if let left = view.leftOut, view.state == "left_out" {
                        text += " <span class=\"left-out-reason\">(\(escape(left.reason)))</span>"
                    }
                    return text
                }
                .joined(separator: ", ")
            html += "<tr><td>\(escape(service.name))</td><td>\(escape(summary.lastGoodVersion ?? "none yet"))</td><td>\(now)</td><td>\(targets)</td></tr>\n"
        }
        html += "</table>\n<h2>Recent runs</h2>\n<table id=\"runs\">\n<tr><th>run</th><th>service</th><th>version</th><th>status</th><th>created</th><th>asked by</th><th>reason</th><th>targets</th><th>error</th></tr>\n"
        for run in try store.runs(RunFilter(limit: 20)) {
            var perTarget: [String] = []
            var seen: [String: Phase] = [:]
            for step in run.steps { seen[step.targetID] = step.phase }
            for target in Array(Set(run.steps.map(\.targetID))).sorted() {
                perTarget.append("\(escape(target)): \(seen[target]!.rawValue)")
            }
            html += "<tr><td><a href=\"/api/v1/runs/\(run.id)\">\(run.id)</a></td><td>\(escape(run.service))</td><td>\(escape(run.version))</td>"
            html += "<td class=\"status-\(run.status.rawValue)\">\(run.status.rawValue)</td><td>\(Timestamp.format(run.createdAt))</td>"
            html += "<td>\(escape(run.requestedBy))</td><td>\(escape(run.reason ?? ""))</td>"
            html += "<td>\(perTarget.joined(separator: "; "))</td><td>\(escape(run.error ?? ""))</td></tr>\n"
        }
        html += "</table>\n</section>"
        return html
    }
}

func escape(_ text: String) -> String {
    var out = ""
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(character)
        }
    }
    return out
}
