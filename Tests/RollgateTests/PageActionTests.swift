@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
import HTTPTesting

/// Acting from the page (issue 20): every action through the signed-in session in headless
/// Chromium, as plain forms; and every way a forged or foreign form is refused.
@Suite(.serialized) struct PageActionTests: DrivesBrowser {
    let directory = TempDirectory()
    let ops = "page-ops-token-0123456789abcdef"
    let viewer = "page-viewer-token-0123456789abc"
    let deployer = "page-deployer-token-0123456789a"
    let oncall = "page-oncall-token-0123456789abcd"

    var config: String {
        directory.write("rollgate.yaml", """
            listen: 127.0.0.1:0
            database: \(directory.path)/rollgate.db
            api_tokens:
              - {name: ops, token_env: OPS_TOKEN}
              - {name: viewer, token_env: VIEWER_TOKEN, scopes: [read]}
              - {name: deployer, token_env: DEPLOYER_TOKEN, scopes: [read, deploy]}
              - {name: oncall, token_env: ONCALL_TOKEN}
            services:
              - name: web
                simulated: {targets: 3, drain_seconds: 0.2, healthy_seconds: 0.2}
                poll_interval: 100ms
                hooks: {deploy: "true"}
              - name: slow
                simulated: {targets: 8, drain_seconds: 1.5, healthy_seconds: 0.2}
                poll_interval: 100ms
                hooks: {deploy: "true"}
              - name: baked
                simulated: {targets: 2, drain_seconds: 0.2, healthy_seconds: 0.2}
                poll_interval: 100ms
                canary: {targets: 1, bake: 10m}
                hooks: {deploy: "true"}
              - name: flaky
                simulated: {targets: 2, drain_seconds: 0.2, healthy_seconds: 0.2}
                poll_interval: 100ms
                hooks: {deploy: 'if [ "$ROLLGATE_TARGET_ID" = flaky-2 ]; then echo "broken build"; exit 3; fi'}
            """)
    }

    func server() async throws -> (RollgateProcess, UInt16) {
        let server = try RollgateProcess(["serve", "--config", config],
                                         environment: ["OPS_TOKEN": ops, "VIEWER_TOKEN": viewer, "DEPLOYER_TOKEN": deployer, "ONCALL_TOKEN": oncall])
        return (server, try await server.port())
    }

    /// Deploys from the page's form and lands on the run's page.
    func deployFromForm(_ service: String, _ version: String, reason: String = "", from page: String? = nil) -> [String] {
        (page.map { [goto($0)] } ?? []) + [fill("#deploy-form select[name=service]", service), fill("#deploy-form input[name=version]", version),
         fill("#deploy-form input[name=reason]", reason), click("#deploy-form button[type=submit]")]
    }

    var runStatus: String { "document.getElementById('run') && document.getElementById('run').dataset.status" }
    func runEnded(_ status: String) -> String { wait("(\(runStatus)) === '\(status)'") }
    var location: String { eval("location.pathname") }
    var headline: String { eval("document.querySelector('h2') ? document.querySelector('h2').textContent : ''") }

    @Test func everyActionWorksFromThePageThroughTheSignedInSession() async throws {
        try FileManager.default.createDirectory(atPath: repositoryRoot + "/.build/test-artifacts", withIntermediateDirectories: true)
        let (server, port) = try await server()
        defer { server.kill(SIGTERM) }
        let base = "http://127.0.0.1:\(port)"
        let results = try await browser([
            viewport(1280),
            goto(base + "/"),
            location,                                                            // 0: sent to sign in
            fill("input[name=token]", ops), click("button[type=submit]"),
            eval("document.querySelector('.who') ? document.querySelector('.who').textContent : ''"),  // 1
            // Deploy.
        ] + deployFromForm("web", "v2", reason: "from the page") + [
            location,                                                            // 2
            runEnded("succeeded"),
            eval("document.getElementById('run').innerText"),                    // 3
            // Lock, then a deploy is refused with the lock named, then unlock after confirming.
            goto(base + "/"),
            fill("#lock-form select[name=service]", "web"), fill("#lock-form input[name=reason]", "freeze for the demo"),
            click("#lock-form button[type=submit]"),
            eval("document.getElementById('services').innerText"),               // 4
        ] + deployFromForm("web", "v3") + [
            eval("document.getElementById('refused').innerText"),                // 5
            goto(base + "/"),
            click("button.action-unlock"),
            headline,                                                            // 6: are you sure?
            click("#confirm button[type=submit]"),
            eval("document.getElementById('services').innerText.includes('locked')"),  // 7
            // Deploy v3, then roll back to v2 after confirming.
        ] + deployFromForm("web", "v3", from: base + "/") + [
            runEnded("succeeded"),
            goto(base + "/"),
            click("button.action-rollback"),
            headline,                                                            // 8
            click("#confirm button[type=submit]"),
            location,                                                            // 9
            runEnded("succeeded"),
            eval("document.querySelector('#run h2').textContent"),               // 10
            // Cancel a run of eight slow targets from its page: it stops after the target in hand.
        ] + deployFromForm("slow", "v1", from: base + "/") + [
            wait("document.querySelector('button.action-cancel') !== null"),
            click("button.action-cancel"),
            headline,                                                            // 11
            click("#confirm button[type=submit]"),
            runEnded("cancelled"),
            // Promote a canary that would bake for ten minutes.
        ] + deployFromForm("baked", "v1", from: base + "/") + [
            wait("document.querySelector('button.action-promote') !== null"),
            click("button.action-promote"),
            click("#confirm button[type=submit]"),
            runEnded("succeeded"),
            // A failed deploy leaves flaky-2 out: the banner says so; restore it from there.
        ] + deployFromForm("flaky", "v1", from: base + "/") + [
            runEnded("failed"),
            goto(base + "/"),
            eval("document.querySelector('.banner') ? document.querySelector('.banner').innerText : ''"),  // 12
            // The forms and the banner fit a phone: nothing wider than 390 px.
            // Target ids never break inside (`flaky-` / `2`) beside long reasons, wide or narrow.
            wait("Array.from(document.querySelectorAll('#state .id')).every(e => e.getClientRects().length === 1)", timeout: 3),
            viewport(390), wait("document.documentElement.scrollWidth <= window.innerWidth", timeout: 3),
            wait("Array.from(document.querySelectorAll('#state .id')).every(e => e.getClientRects().length === 1)", timeout: 3),
            step(("screenshot", .string(repositoryRoot + "/.build/test-artifacts/actions-390.png"))), viewport(1280),
            step(("screenshot", .string(repositoryRoot + "/.build/test-artifacts/actions-1280.png"))),
            click("button.action-restore"),
            eval("document.querySelector('#run h2').textContent"),               // 13
            runEnded("succeeded"),
            goto(base + "/"),
            eval("document.querySelector('.banner') === null"),                  // 14
            // Out again; forget it after confirming.
        ] + deployFromForm("flaky", "v2", from: base + "/") + [
            runEnded("failed"),
            goto(base + "/"),
            click("button.action-forget"),
            headline,                                                            // 15
            fill("#confirm input[name=reason]", "instance terminated"),
            click("#confirm button[type=submit]"),
            eval("document.querySelector('.banner') === null"),                  // 16
            // A form whose token was tampered with does nothing.
            fill("#deploy-form input[name=csrf]", "0000"),
        ] + deployFromForm("web", "v9") + [
            eval("document.getElementById('refused').innerText"),                // 17
            // Signed out, the page offers no action.
            goto(base + "/"), click(".who button[type=submit]"), goto(base + "/login"),
            fill("input[name=token]", viewer), click("button[type=submit]"),
            eval("[document.getElementById('deploy-form') === null, document.querySelectorAll('form.inline').length, document.querySelector('.who').textContent]"),  // 18
        ])
        try #require(results.count == 19, "\(results)")
        #expect(results[0] == .string("/login"))
        #expect(results[1].string?.contains("Signed in as page:ops") == true, "\(results[1])")
        #expect(results[2] == .string("/runs/1"), "a deploy lands on its run's page")
        #expect(results[3].string?.contains("page:ops") == true && results[3].string?.contains("from the page") == true, "\(results[3])")
        #expect(results[4].string?.contains("locked by page:ops: freeze for the demo") == true, "\(results[4])")
        #expect(results[5].string?.contains("web is locked by page:ops") == true && results[5].string?.contains("queue until unlocked") == true, "\(results[5])")
        #expect(results[6] == .string("Unlock web?"), "\(results[6])")
        #expect(results[7] == .bool(false), "unlocked")
        #expect(results[8] == .string("Roll web back from v3 to v2?"), "\(results[8])")
        #expect(results[9] == .string("/runs/3"), "\(results[9])")
        #expect(results[10].string?.contains("web v2 (rollback from v3)") == true, "labelled a rollback: \(results[10])")
        #expect(results[11].string?.hasPrefix("Cancel run 4 (slow v1") == true, "\(results[11])")
        #expect(results[12].string?.contains("flaky has lost capacity: serving 1 of 2") == true
                && results[12].string?.contains("rollgate restore flaky flaky-2") == true, "\(results[12])")
        #expect(results[13].string?.contains("restore flaky-2") == true, "\(results[13])")
        #expect(results[14] == .bool(true), "restored: no banner")
        #expect(results[15] == .string("Forget flaky-2 of flaky?"), "\(results[15])")
        #expect(results[16] == .bool(true), "forgotten: no banner")
        #expect(results[17].string?.contains("does not match your session") == true, "\(results[17])")
        #expect(results[18] == .array([.bool(true), .number(0), .string(results[18].array?.last?.string ?? "")])
                && results[18].array?.last?.string?.contains("page:viewer (read)") == true, "a read-only session gets no forms: \(results[18])")

        // What the browser did is what the API shows.
        let client = HTTPClient(port: port)
        let auth = [("Authorization", "Bearer \(ops)")]
        let runs = json(try await client.request("GET", "/api/v1/runs?limit=20", headers: auth))["runs"]?.array ?? []
        let summary = runs.reversed().map { "\($0["id"]?.number.map { Int($0) } ?? 0) \($0["service"]?.string ?? "") \($0["version"]?.string ?? "") \($0["status"]?.string ?? "") \($0["requested_by"]?.string ?? "")" }
        #expect(summary == ["1 web v2 succeeded page:ops", "2 web v3 succeeded page:ops", "3 web v2 succeeded page:ops",
                            "4 slow v1 cancelled page:ops", "5 baked v1 succeeded page:ops", "6 flaky v1 failed page:ops",
                            "7 flaky v1 succeeded page:ops", "8 flaky v2 failed page:ops"], "\(summary)")
        #expect(summary.count == 8 && !summary.contains { $0.contains("v9") }, "the tampered form deployed nothing: \(summary)")
        let services = json(try await client.request("GET", "/api/v1/services", headers: auth))["services"]?.array ?? []
        let flaky = services.first { $0["name"] == .string("flaky") }
        #expect(flaky?["left_out"]?.int == 0, "forgotten")
        let log = (json(try await client.request("GET", "/api/v1/runs/8/logs", headers: auth))["lines"]?.array ?? []).compactMap { $0["text"]?.string }
        #expect(log.contains("flaky-2 forgotten by page:ops: instance terminated; rollgate no longer counts it as left out"), "who and why on record: \(log.suffix(3))")
    }

    /// Signs in with `token` as a browser would: the session cookie and the page's form token.
    func session(_ client: HTTPClient, _ token: String) async throws -> (cookie: String, csrf: String?) {
        let login = try await client.request("POST", "/login", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                                             body: Array("token=\(token)".utf8))
        let cookie = try #require(login.header("set-cookie")?.split(separator: ";").first.map(String.init), "signed in")
        let page = String(decoding: try await client.request("GET", "/", headers: [("Cookie", cookie), ("Accept", "text/html")]).body, as: UTF8.self)
        let csrf = page.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/).map { String($0.1) }
        return (cookie, csrf)
    }

    @Test func formsWithoutTheSessionTheirTokenOrTheScopeAreRefusedAndChangeNothing() async throws {
        let (server, port) = try await server()
        defer { server.kill(SIGTERM) }
        let client = HTTPClient(port: port)
        let (cookie, csrf) = try await session(client, ops)
        let csrfOps = try #require(csrf, "the page carries a form token for ops")
        try await Task.sleep(for: .seconds(1.1))   // a second sign-in with another expiry: another cookie
        let (otherCookie, otherCSRF) = try await session(client, ops)
        #expect(otherCookie != cookie && otherCSRF != csrfOps, "each sign-in has its own form token")
        let (viewerCookie, viewerForm) = try await session(client, viewer)
        #expect(viewerForm == nil, "a read-only session's page has no action form")
        // Its form token as the server would make it, to show the scope (not the token) refuses.
        let viewerCSRF: String? = WebhookSignature.hexString(WebhookSignature.hmac(
            key: Array(viewer.utf8), Array("rollgate-csrf:\(viewerCookie.dropFirst("rollgate_session=".count))".utf8)))
        let (deployerCookie, deployerCSRF) = try await session(client, deployer)

        func post(_ action: String, _ form: String, cookie: String?, extra: [(String, String)] = []) async throws -> (Int, String) {
            var headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "text/html")] + extra
            if let cookie { headers.append(("Cookie", cookie)) }
            let answer = try await client.request("POST", "/actions/\(action)", headers: headers, body: Array(form.utf8))
            return (answer.status, String(decoding: answer.body, as: UTF8.self))
        }
        let deploy = "service=web&version=v5&csrf="
        let refusals: [(String, (Int, String), Int, String)] = [
            ("no session", try await post("deploy", deploy + csrfOps, cookie: nil), 401, "sign in first"),
            ("no form token", try await post("deploy", "service=web&version=v5", cookie: cookie), 403, "does not match your session"),
            ("a wrong form token", try await post("deploy", deploy + String(repeating: "0", count: 64), cookie: cookie), 403, "does not match your session"),
            ("another session's form token", try await post("deploy", deploy + csrfOps, cookie: otherCookie), 403, "does not match your session"),
            ("a read-only session", try await post("deploy", deploy + (viewerCSRF ?? ""), cookie: viewerCookie), 403, "has no deploy scope"),
            ("a deploy-only session locking", try await post("lock", "service=web&reason=x&csrf=" + (deployerCSRF ?? ""), cookie: deployerCookie), 403, "has no admin scope"),
            ("another site's page", try await post("deploy", deploy + csrfOps, cookie: cookie, extra: [("Sec-Fetch-Site", "cross-site")]), 403, "from another site"),
            ("another origin", try await post("deploy", deploy + csrfOps, cookie: cookie, extra: [("Origin", "http://evil.example")]), 403, "from another origin"),
            ("an opaque origin", try await post("deploy", deploy + csrfOps, cookie: cookie, extra: [("Origin", "null")]), 403, "from another origin"),
            ("a site at an address", try await post("deploy", deploy + csrfOps, cookie: cookie, extra: [("Origin", "http://10.1.2.3")]), 403, "from another origin"),
            ("this host, another port", try await post("deploy", deploy + csrfOps, cookie: cookie, extra: [("Origin", "http://127.0.0.1:1")]), 403, "from another origin"),
            ("an unknown action", try await post("explode", deploy + csrfOps, cookie: cookie), 404, "there is no action"),
        ]
        for (what, answer, status, words) in refusals {
            #expect(answer.0 == status && answer.1.contains(words), "\(what): \(answer.0) \(answer.1.prefix(600))")
        }
        // What stops or undoes something asks first: cancel without confirm=yes is a question.
        let (asked, question) = try await post("unlock", "service=web&csrf=\(csrfOps)", cookie: cookie)
        #expect(asked == 200 && question.contains("Unlock web?") && question.contains("name=\"confirm\" value=\"yes\""), "\(question.prefix(800))")
        let auth = [("Authorization", "Bearer \(ops)")]
        #expect((json(try await client.request("GET", "/api/v1/runs", headers: auth))["runs"]?.array ?? []).isEmpty, "no refused form made a run")
        // The same form with its own session goes through, as the deploy scope allows.
        let (done, _) = try await post("deploy", deploy + (deployerCSRF ?? ""), cookie: deployerCookie,
                                       extra: [("Origin", "http://127.0.0.1:\(port)"), ("Sec-Fetch-Site", "same-origin")])
        #expect(done == 303, "this page's own origin is let through")
        let run = json(try await client.request("GET", "/api/v1/runs/1", headers: auth))
        #expect(run["requested_by"] == .string("page:deployer") && run["version"] == .string("v5"), "\(run)")
        // The same form sent twice (a double click) is one deploy.
        let twice = "service=web&version=v6&request_id=0123abcd&csrf=" + (deployerCSRF ?? "")
        let (first, _) = try await post("deploy", twice, cookie: deployerCookie)
        let again = try await client.request("POST", "/actions/deploy", headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", deployerCookie)],
                                             body: Array(twice.utf8))
        #expect(first == 303 && again.status == 303 && again.header("location") == "/runs/2", "one run for both: \(again.header("location") ?? "")")
        #expect((json(try await client.request("GET", "/api/v1/runs", headers: auth))["runs"]?.array ?? []).count == 2)
        // Someone else's lock is replaced only when asked, and the page says how.
        let (locked, _) = try await post("lock", "service=slow&reason=freeze&csrf=\(csrfOps)", cookie: cookie)
        let (other, otherWhy) = try await post("lock", "service=slow&reason=mine&csrf=\(otherCSRF ?? "")", cookie: otherCookie)
        #expect(locked == 303 && other == 303, "the same token in two sessions is one caller (page:ops): \(otherWhy.prefix(300))")
        let (oncallCookie, oncallCSRF) = try await session(client, oncall)
        let (refusedLock, lockWhy) = try await post("lock", "service=slow&reason=incident&csrf=\(oncallCSRF ?? "")", cookie: oncallCookie)
        #expect(refusedLock == 409 && lockWhy.contains("slow is locked by page:ops: mine") && lockWhy.contains("tick &quot;replace someone else&#39;s lock&quot;"),
                "\(lockWhy.prefix(900))")
        let (forced, _) = try await post("lock", "service=slow&reason=incident&force=true&csrf=\(oncallCSRF ?? "")", cookie: oncallCookie)
        #expect(forced == 303)
        #expect(json(try await client.request("GET", "/api/v1/services", headers: auth))["services"]?.array?.first { $0["name"] == .string("slow") }?["lock"]?["locked_by"]
                == .string("page:oncall"))
        // A bad field is the API's own refusal, said on a page.
        let (bad, why) = try await post("deploy", "service=web&version=../x&csrf=" + (deployerCSRF ?? ""), cookie: deployerCookie)
        #expect(bad == 422 && why.contains("is refused"), "\(why.prefix(600))")
    }

    /// The demo has no sign-in: anyone on the machine acts from its page (the README's first
    /// steps), still with the page's form token (keyed by the process) and from its own origin.
    @Test func theDemoActsFromItsPageWithoutSigningIn() async throws {
        let server = try RollgateProcess(["serve", "--listen", "127.0.0.1:0", "--database", directory.path + "/demo.db"])
        defer { server.kill(SIGTERM) }
        let port = try await server.port()
        let results = try await browser([
            viewport(1280),
            goto("http://127.0.0.1:\(port)/"),
            eval("[document.querySelector('.who') === null, document.getElementById('deploy-form') !== null]"),
        ] + deployFromForm("demo", "v2", reason: "from the demo page") + [
            location,
        ])
        try #require(results.count == 2, "\(results)")
        #expect(results[0] == .array([.bool(true), .bool(true)]), "no sign-in, a deploy form: \(results[0])")
        #expect(results[1] == .string("/runs/1"))
        // Another process's page (an old tab after a restart) cannot act: its form token is stale.
        let stale = try await HTTPClient(port: port).request("POST", "/actions/deploy", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                                                             body: Array("service=demo&version=v3&csrf=\(String(repeating: "ab", count: 32))".utf8))
        #expect(stale.status == 403)
        let run = json(try await HTTPClient(port: port).request("GET", "/api/v1/runs/1"))
        #expect(run["requested_by"] == .string("demo") && run["reason"] == .string("from the demo page"), "\(run)")
    }
}
