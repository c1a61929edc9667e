import Configuration
import Integrations
import Page
import WireFormat
import MicroHTTP
import Rollout

/// Acting from the page: `POST /actions/NAME` takes a plain form, checks that it comes from
/// this server's own page (same origin, the session's form token), asks "are you sure?" for
/// what stops or undoes something, then does exactly what the API's endpoint does, as the
/// signed-in token with the session's scopes, and sends the browser to the result.
extension API {
    /// Who acts from a page: the caller name runs record, the token (nil in the demo) and the
    /// scopes the session holds. Set only by `pageAction` after its checks.
    struct PageCaller: Sendable {
        let name: String
        let token: APIToken?
        let scopes: Set<TokenScope>
    }

    @TaskLocal static var pageCaller: PageCaller?

    /// The session a page request carries: in the demo, everyone (with a form token keyed by
    /// this process); otherwise a valid sign-in cookie, with a form token derived from it.
    func pageSession(_ request: HTTPRequest) -> PageSession? { signedIn(request)?.session }

    /// The session and the token it was made with (none in the demo), from one check of the cookie.
    private func signedIn(_ request: HTTPRequest) -> (session: PageSession, token: APIToken?)? {
        if config.isDemo {
            return (PageSession(who: "demo", scopes: Set(TokenScope.allCases),
                                csrf: WebhookSignature.hexString(WebhookSignature.hmac(key: demoFormKey, Array("rollgate-csrf:demo".utf8))),
                                signedIn: false), nil)
        }
        guard let cookie = SessionCookie.presented(in: request.header("cookie")),
              let session = SessionCookie.verify(cookie, tokens: config.apiTokens, now: unixNow) else { return nil }
        let csrf = WebhookSignature.hexString(WebhookSignature.hmac(key: Array(session.token.secret.utf8), Array("rollgate-csrf:\(cookie)".utf8)))
        return (PageSession(who: "page:\(session.token.name)", scopes: session.scopes, csrf: csrf, signedIn: true), session.token)
    }

    /// `POST /actions/{action}`.
    func pageAction(_ request: HTTPRequest) async -> HTTPResponse {
        let form = FormBody.parse(request.body)
        let back = form["run"].flatMap { Int64($0) }.map { "/runs/\($0)" } ?? "/"
        guard let action = PageAction(rawValue: request.parameters["action"] ?? "") else {
            return statusPage.actionRefused(nil, status: 404, message: "there is no action \(String((request.parameters["action"] ?? "").prefix(40)))", back: "/")
        }
        // A browser says where a form came from: another site's page is refused before anything else.
        if let site = request.header("sec-fetch-site"), site != "same-origin", site != "none" {
            return statusPage.actionRefused(action, status: 403, message: "this form was sent from another site (Sec-Fetch-Site: \(String(site.prefix(20)))); act from rollgate's own page", back: back)
        }
        if let origin = request.header("origin"), !sameOrigin(origin, request) {
            return statusPage.actionRefused(action, status: 403, message: "this form was sent from another origin (\(String(origin.prefix(100)))); act from rollgate's own page", back: back)
        }
        guard let (session, token) = signedIn(request) else {
            return statusPage.actionRefused(action, status: 401, message: "sign in first (at /login) with a token that may \(action.rawValue)", back: "/login")
        }
        guard let presented = form["csrf"], constantTimeEqual(Array(presented.utf8), Array(session.csrf.utf8)) else {
            authenticationFailed(request)
            return statusPage.actionRefused(action, status: 403, message: "the form's token does not match your session (the page is older than your sign-in, or came from elsewhere); reload the page and try again", back: back)
        }
        guard session.may(action.scope) else {
            return statusPage.actionRefused(action, status: 403, message: "\(session.who) has no \(action.scope.rawValue) scope, which \(action.rawValue) needs", back: back)
        }
        let caller = PageCaller(name: session.who, token: token, scopes: session.scopes)
        do {
            if action.confirms, form["confirm"] != "yes" {
                return try await confirm(action, form, session: session, back: back)
            }
            return try await API.$pageCaller.withValue(caller) { try await perform(action, form, request) }
        } catch {
            // The API's answer (status, message); its hint names the API's fields, so the page
            // says its own control instead.
            let answer = answer(error, to: request)
            let error = JSONValue.parse(answer.body)?["error"]
            var message = error?["message"]?.string ?? "the server could not do this; see its log"
            switch error?["code"]?.string {
            case "service_locked": message += "; tick \"queue until unlocked\" to deploy when the lock ends"
            case "locked_by_other": message += "; tick \"replace someone else's lock\" to replace it"
            default: break
            }
            return statusPage.actionRefused(action, status: answer.status, message: message, back: back)
        }
    }

    /// The form's `Origin` is this page's: the authority the browser asked (`Host`), or
    /// `public_url`'s (behind a proxy that sends its own `Host`). `null` (a sandboxed or
    /// privacy-stripped page) and every other site, addresses included, are not.
    func sameOrigin(_ origin: String, _ request: HTTPRequest) -> Bool {
        func authority(_ url: String) -> String? {
            guard let scheme = url.firstRange(of: "://") else { return nil }
            let rest = url[scheme.upperBound...]
            return String(rest.prefix { $0 != "/" }).lowercased()
        }
        guard let presented = authority(origin), !presented.isEmpty else { return false }
        if let host = request.header("host")?.lowercased(), presented == host { return true }
        if let url = config.publicURL, let own = authority(url), presented == own { return true }
        return false
    }

    /// The confirmation page, saying what will happen to what.
    private func confirm(_ action: PageAction, _ form: [String: String], session: PageSession, back: String) async throws -> HTTPResponse {
        let fields = form.filter { $0.key != "csrf" && $0.key != "confirm" }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let service = form["service"] ?? ""
        let question: String
        let detail: String
        switch action {
        case .cancel, .promote:
            guard let id = form["run"].flatMap({ Int64($0) }), id > 0, let run = try await read({ try $0.run(id) }) else {
                throw Refusal(status: 404, code: "run_not_found", message: "no run \(form["run"] ?? "")")
            }
            if action == .cancel {
                question = "Cancel run \(run.id) (\(run.service) \(StatusPage.what(run)), \(run.status.rawValue))?"
                detail = "The target in hand is put back in service before the run ends; targets not reached stay on their version."
            } else {
                question = "Promote run \(run.id) (\(run.service) \(run.version)) now?"
                detail = "The canary bake ends at once and the rest of the targets roll without waiting for it."
            }
        case .rollback:
            try knownService(service)
            let current = try await read { try $0.serviceSummary(service).lastGoodVersion }
            let previous = try await current.asyncFlatMap { current in
                try await self.read { try $0.previousGoodVersion(service: service, before: Int64.max, otherThan: current) }
            }
            question = "Roll \(service) back" + (current.map { " from \($0)" } ?? "") + (previous.map { " to \($0)" } ?? "") + "?"
            detail = "This queues a deploy of the last good version before the current one, as any deploy (lock, queue)."
        case .unlock:
            try knownService(service)
            let lock = try await read { try $0.lock(service: service, at: self.clock.now) }
            question = "Unlock \(service)?"
            detail = lock.map { "It is locked by \($0.lockedBy): \($0.reason). Deploys queued behind the lock start." } ?? "It is not locked now."
        case .forget:
            question = "Forget \(form["target"] ?? "") of \(service)?"
            detail = "rollgate stops counting it as left out and will not put it back. Do this only when the instance is gone for good; otherwise restore it."
        case .deploy, .lock, .restore:
            question = "\(action.rawValue)?"
            detail = ""
        }
        return statusPage.confirmation(action, question: question, detail: detail, fields: fields, session: session, back: back)
    }

    /// The API's own handler, given the form as its JSON body and path parameters; the
    /// browser then goes to the run it made or moved, or to the state.
    private func perform(_ action: PageAction, _ form: [String: String], _ request: HTTPRequest) async throws -> HTTPResponse {
        var call = request
        call.headers = request.headers.filter { $0.name != "authorization" && $0.name != "idempotency-key" }
        var body: [(String, JSONValue)] = []
        func text(_ name: String, required: Bool = false) {
            if let value = form[name], !value.isEmpty || required { body.append((name, .string(value))) }
        }
        func flag(_ name: String) { if form[name] == "true" || form[name] == "on" { body.append((name, .bool(true))) } }
        call.parameters = ["name": form["service"] ?? "", "id": form["run"] ?? "", "target": form["target"] ?? ""]
        let handler: (HTTPRequest) async throws -> HTTPResponse
        switch action {
        case .deploy:
            text("service", required: true); text("version", required: true); text("reason"); flag("wait_for_lock")
            // The form's own id: the same form sent twice is one deploy.
            if let id = form["request_id"], (1...64).contains(id.utf8.count), id.utf8.allSatisfy({ $0 < 0x80 && $0 > 0x20 }) {
                call.headers.append((name: "idempotency-key", value: "page-form:\(id)"))
            }
            handler = deploy
        case .cancel: handler = cancel
        case .promote: handler = promote
        case .rollback: handler = rollback
        case .lock:
            text("reason", required: true); text("expires_in"); flag("force")
            handler = lock
        case .unlock: handler = unlock
        case .restore: handler = restore
        case .forget:
            text("reason")
            handler = forget
        }
        call.body = body.isEmpty ? [] : Array(JSONValue.object(body).text.utf8)
        let answer = try await handler(call)
        guard (200..<300).contains(answer.status) else {
            throw Refusal(status: answer.status, code: "refused", message: JSONValue.parse(answer.body)?["error"]?["message"]?.string ?? "refused")
        }
        let runID = JSONValue.parse(answer.body)?["id"]?.number.map { Int64($0) }
        let location = runID.map { "/runs/\($0)" } ?? "/"
        logger.info("page action", metadata: ["action": "\(action.rawValue)", "by": "\(API.pageCaller?.name ?? "-")"])
        return HTTPResponse(status: 303, headers: [("Location", location), ("Cache-Control", "no-store")])
    }
}

extension Optional {
    func asyncFlatMap<U>(_ transform: (Wrapped) async throws -> U?) async rethrows -> U? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
