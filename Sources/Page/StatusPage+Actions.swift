import Configuration
import MicroHTTP
import Rollout

/// The page's actions as plain forms: each posts to `/actions/NAME` with the session's form
/// token; nothing needs JavaScript. Forms with text fields sit outside the live part, so an
/// update never wipes what someone is typing; the live part holds buttons only.
extension StatusPage {
    /// Above the live part: who is signed in, and the deploy and lock forms their scopes allow;
    /// without a session, where to sign in.
    func actionPanel(_ session: PageSession?) -> String {
        guard let session else {
            guard !config.apiTokens.isEmpty else { return "" }
            return "<p class=\"signin\"><a href=\"/login\">Sign in</a> with a token to deploy, lock or restore from this page.</p>\n"
        }
        var html = "<section id=\"actions\">\n"
        if session.signedIn {
            html += "<form method=\"post\" action=\"/logout\" class=\"who\">Signed in as <strong>\(escape(session.who))</strong> (\(session.scopes.map(\.rawValue).sorted().joined(separator: ", "))) <button type=\"submit\">Sign out</button></form>\n"
        }
        let services = config.services.map { "<option>\(escape($0.name))</option>" }.joined()
        if session.may(.deploy) {
            html += """
                <details open><summary>Deploy</summary>
                <form method="post" action="/actions/deploy" id="deploy-form">\(csrfField(session))<input type="hidden" name="request_id" value="\(StatusPage.formID())">
                <label>service <select name="service" required>\(services)</select></label>
                <label>version <input name="version" required maxlength="128" placeholder="v42" autocomplete="off"></label>
                <label>reason <input name="reason" maxlength="1000" autocomplete="off"></label>
                <label><input type="checkbox" name="wait_for_lock" value="true"> queue until unlocked</label>
                <button type="submit">Deploy</button>
                </form></details>

                """
        }
        if session.may(.admin) {
            html += """
                <details><summary>Lock a service</summary>
                <form method="post" action="/actions/lock" id="lock-form">\(csrfField(session))
                <label>service <select name="service" required>\(services)</select></label>
                <label>reason <input name="reason" required maxlength="1000" autocomplete="off"></label>
                <label>for <input name="expires_in" placeholder="2h (empty: until unlocked)" size="10" autocomplete="off"></label>
                <label><input type="checkbox" name="force" value="true"> replace someone else's lock</label>
                <button type="submit">Lock</button>
                </form></details>

                """
        }
        return html + "</section>\n"
    }

    /// A new id for each deploy form shown: a double click (or a resent POST) finds the run the
    /// first made instead of queueing a second (the API's Idempotency-Key).
    static func formID() -> String {
        (0..<2).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined()
    }

    func csrfField(_ session: PageSession) -> String {
        "<input type=\"hidden\" name=\"csrf\" value=\"\(escape(session.csrf))\">"
    }

    /// One button that posts `action` with `fields`; nothing when the session may not.
    func button(_ action: PageAction, _ label: String, _ fields: [(String, String)], _ session: PageSession?) -> String {
        guard let session, session.may(action.scope) else { return "" }
        let hidden = fields.map { "<input type=\"hidden\" name=\"\(escape($0.0))\" value=\"\(escape($0.1))\">" }.joined()
        return "<form method=\"post\" action=\"/actions/\(action.rawValue)\" class=\"inline\">\(csrfField(session))\(hidden)<button type=\"submit\" class=\"action-\(action.rawValue)\">\(escape(label))</button></form>"
    }

    /// "Are you sure?": the same fields again with `confirm=yes`, and a way back.
    package func confirmation(_ action: PageAction, question: String, detail: String, fields: [(String, String)],
                              session: PageSession, back: String) -> HTTPResponse {
        let hidden = (fields + [("confirm", "yes")]).map { "<input type=\"hidden\" name=\"\(escape($0.0))\" value=\"\(escape($0.1))\">" }.joined()
        let body = """
            <section id="confirm">
            <h2>\(escape(question))</h2>
            <p>\(escape(detail))</p>
            <form method="post" action="/actions/\(action.rawValue)">\(csrfField(session))\(hidden)
            \(action == .forget ? "<p><label>why (recorded with your name) <input name=\"reason\" maxlength=\"1000\" autocomplete=\"off\" placeholder=\"instance terminated\"></label></p>" : "")
            <button type="submit" class="danger">Yes, \(escape(action.rawValue))</button> <a href="\(escape(back))">No, go back</a>
            </form>
            </section>
            """
        return page(body, title: "rollgate: \(action.rawValue)?")
    }

    /// An action that could not be done: the reason, in the page's words, and a way back.
    package func actionRefused(_ action: PageAction?, status: Int, message: String, back: String) -> HTTPResponse {
        let body = """
            <section id="refused" role="alert">
            <h2>\(escape(action.map { "Could not \($0.rawValue)" } ?? "Refused"))</h2>
            <p class="status-failed">\(escape(message))</p>
            <p><a href="\(escape(back))">← back</a></p>
            </section>
            """
        var response = page(body, title: "rollgate: refused")
        response.status = status
        return response
    }

    /// Lost capacity, said at the top of the live part: which targets are out, why, and the
    /// command (or button) that puts each back.
    func capacityBanner(_ rows: [Model.ServiceRow], _ session: PageSession?) -> String {
        var html = ""
        for row in rows {
            let out = row.targets.filter { $0.state == "left_out" }
            guard !out.isEmpty else { continue }
            let fleet = row.fleet
            html += "<div class=\"banner\" role=\"alert\"><strong>\(escape(row.service.name)) has lost capacity: \(escape(fleet.summary.split(separator: ";").first.map(String.init) ?? ""))</strong><ul>"
            for view in out {
                let id = view.target.id
                html += "<li>\(escape(id)) is out of the load balancer: \(escape(view.leftOut?.reason ?? "")). "
                    + putBack(id, of: row.service.name, session) + "</li>"
            }
            html += "</ul></div>\n"
        }
        return html
    }

    /// What to do about a left-out target, as commands and their buttons: restore it once fixed,
    /// or forget it if the instance is gone.
    func putBack(_ id: String, of service: String, _ session: PageSession?) -> String {
        "Fix it, then <code>rollgate restore \(escape(service)) \(escape(id))</code> "
            + button(.restore, "Restore \(id)", [("service", service), ("target", id)], session)
            + "; if the instance is gone for good, <code>rollgate forget \(escape(service)) \(escape(id))</code> "
            + button(.forget, "Forget \(id)", [("service", service), ("target", id)], session)
    }

    /// A run's next steps, from what the history says now (`NextStep.after`).
    func nextSteps(of run: Run) -> [NextStep] {
        guard NextStep.mayFollow(run), let summary = try? history.serviceSummary(run.service) else { return [] }
        return NextStep.after(run, in: summary)
    }

    /// The run page's banner: each next step as the command and its button.
    func nextSteps(_ run: Run, session: PageSession?) -> String {
        let service = run.service
        let items = nextSteps(of: run).map { step -> String in
            switch step {
            case .restore(let id):
                return "<li>\(escape(id)) is still out of the load balancer. " + putBack(id, of: service, session) + "</li>"
            case .deployAgain(let good):
                return "<li>To put \(escape(good)), the last good version, back on every target: <code>rollgate deploy \(escape(service)) \(escape(good))</code> "
                    + button(.deploy, "Deploy \(good) again", [("service", service), ("version", good), ("reason", "back to \(good) after run \(run.id) failed")], session) + "</li>"
            }
        }
        guard !items.isEmpty else { return "" }
        return "<div class=\"banner next-steps\" role=\"alert\"><strong>Next steps</strong><ul>\(items.joined())</ul></div>\n"
    }

    /// The text run page's `next:` lines.
    func nextStepsText(_ run: Run) -> String {
        nextSteps(of: run).map { "next: \($0.text(service: run.service))\n" }.joined()
    }
}
