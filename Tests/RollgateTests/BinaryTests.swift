@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import Monitoring
@testable import WireFormat
import Foundation
import Testing
import MicroHTTP
import HTTPTesting
import RollgateServer
import SQLiteStore
@testable import SQLStore

/// The built `rollgate` executable, run as a user would.
let rollgateBinary = repositoryRoot + "/.build/debug/rollgate"

/// A `rollgate` process with its output collected.
final class RollgateProcess: @unchecked Sendable {
    // @unchecked: `output` is only touched under `lock`.
    let process = Process()
    private let lock = NSLock()
    private var output = Data()

    /// `launcher`: a program that runs rollgate for the test, e.g. `runuser -u nobody --`.
    init(_ arguments: [String], environment: [String: String] = [:], launcher: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: rollgateBinary) else {
            throw TestFailure( "\(rollgateBinary) is missing: run `swift build` first (make test does)")
        }
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(launcher.dropFirst()) + [rollgateBinary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: rollgateBinary)
            process.arguments = arguments
        }
        process.environment = ["PATH": "/usr/bin:/bin", "ROLLGATE_MIGRATIONS": migrationsDirectory,
                               "ROLLGATE_PUBLIC_DIR": publicDirectory].merging(environment) { _, new in new }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        // A thread of its own reads the output to its end with blocking reads. Not Foundation's
        // readabilityHandler: its dispatch source stayed armed on the descriptor after the
        // pipe closed it, and libdispatch's event loop crashed the whole test process
        // (Signal 11 in _dispatch_event_loop_drain, seen in CI and here).
        let handle = pipe.fileHandleForReading
        let reader = Thread { [weak self] in
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                guard let self else { continue }
                self.lock.lock(); self.output.append(data); self.lock.unlock()
            }
        }
        try process.run()
        reader.start()
    }

    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: output, as: UTF8.self) }

    /// Runs to the end and returns (exit status, output).
    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (Int32, String) {
        let child = try RollgateProcess(arguments, environment: environment)
        _ = try await eventually(within: .seconds(60)) { !child.process.isRunning }
        child.process.waitUntilExit()
        try await Task.sleep(for: .milliseconds(50))   // let the last output arrive
        return (child.process.terminationStatus, child.text)
    }

    /// The port from "listening on http://127.0.0.1:PORT/".
    func port() async throws -> UInt16 {
        var found: UInt16?
        _ = try await eventually(within: .seconds(30)) {
            guard let range = text.range(of: #"listening on https?://127\.0\.0\.1:(\d+)/"#, options: .regularExpression) else {
                return !process.isRunning
            }
            found = UInt16(text[range].split(separator: ":").last!.dropLast())
            return true
        }
        guard let found else { throw TestFailure( "rollgate did not start: \(text)") }
        return found
    }

    func kill(_ signal: Int32) {
        Foundation.kill(process.processIdentifier, signal)
        process.waitUntilExit()
    }
}

@Suite(.serialized) struct BinaryTests: DrivesBrowser {
    let directory = TempDirectory()
    let token = "binary-test-token-0123456789"

    var config: String {
        directory.write("rollgate.yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(directory.path)/rollgate.db
            api_tokens:
              - {name: ops, token_env: TEST_ROLLGATE_TOKEN}
            services:
              - name: web
                simulated: {targets: 3, drain_seconds: 1.5, healthy_seconds: 0.3}
                poll_interval: 100ms
                hooks:
                  deploy: echo "installing $ROLLGATE_VERSION on $ROLLGATE_TARGET_ID"
            """)
    }

    /// Full Foundation brings ICU (tens of MB of binary, ~5 MB of idle RSS): the server is built on
    /// FoundationEssentials only. An `import Foundation` creeping back, here or in a package, shows
    /// up as a library the debug binary needs.
    @Test func theServerNeedsFoundationEssentialsOnlyNotFoundationOrICU() async throws {
        let (status, output) = try await runToEnd("/usr/bin/readelf", ["-d", rollgateBinary])
        #expect(status == 0)
        let needed = output.split(separator: "\n").filter { $0.contains("(NEEDED)") }.map { String($0) }
        #expect(needed.contains { $0.contains("[libFoundationEssentials.so]") }, "readelf's list: \(needed)")
        let heavy = needed.filter { ["libFoundation.so", "ICU", "libFoundationInternationalization"].contains(where: $0.contains) }
        #expect(heavy.isEmpty, "the binary needs \(heavy)")
    }

    @Test func checkConfigNamesTheBadKeyAndLine() async throws {
        let bad = directory.write("bad.yaml", "services:\n  - name: web\n    simulated: {}\n    hooks: {deploy: x}\n    drain_timeout: soon\n")
        let (status, output) = try await RollgateProcess.run(["check-config", bad])
        #expect(status == 2)
        #expect(output.contains("\(bad):5: services[0].drain_timeout: expected a duration like 500ms, 30s, 10m or 1h, got soon"), "FILE:LINE: as compilers say it: \(output)")
        let (okStatus, okOutput) = try await RollgateProcess.run(["check-config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        #expect(okStatus == 0)
        #expect(okOutput.contains("OK, 1 service(s): web; 1 API token(s)"))
        #expect(!okOutput.contains(token), "secrets are never printed")
    }

    @Test func checkConfigReportsEveryErrorAtOnceWithSuggestions() async throws {
        let bad = directory.write("many.yaml", """
            listen: nowhere
            api_tokens:
              - {name: ci, token: "0123456789abcdefgh", token_env: X}
            github: {secret_env: NOT_SET_HERE}
            services:
              - name: web
                target_group_arn: arn:aws:elasticloadbalancing:us-east-1:123:targetgroup/web
                poll_intervall: 1s
                hooks: {deploy: ./no-such-deploy.sh}
              - name: api
                simulated: {targets: 2, unhealthy_targets: [api-9]}
                hooks: {deploy: echo}
              - name: web
                simulated: {}
                hooks: {deploy: echo}
            """)
        let (status, output) = try await RollgateProcess.run(["check-config", bad])
        #expect(status == 2)
        // Every error in one pass, in the file's line order, as FILE:LINE: PATH: MESSAGE; the
        // service named twice is said although the first one has errors of its own.
        let expected = ["\(bad):1: listen: expected HOST:PORT", "\(bad):3: api_tokens[0].token: give token_env or token, not both",
                        "\(bad):7: services[0].target_group_arn: expected arn:aws:elasticloadbalancing",
                        "\(bad):8: services[0].poll_intervall: unknown key (did you mean poll_interval?",
                        "\(bad):9: services[0].hooks.deploy: ./no-such-deploy.sh does not exist",
                        "\(bad):11: services[1].simulated.unhealthy_targets: api-9 is not one of this simulation's targets (api-1 to api-2)",
                        "\(bad):13: services[2].name: service web is defined twice (first as services[0])",
                        "\(bad): 7 error(s)"]
        let errors = output.split(separator: "\n").filter { $0.hasPrefix(bad) && !$0.contains("warning:") }.map(String.init)
        #expect(errors.count == expected.count && zip(errors, expected).allSatisfy { $0.hasPrefix($1) }, "in order: \(errors)")
        #expect(output.contains("warning: github.secret_env: environment variable NOT_SET_HERE is not set here"), "\(output)")
        // Serving is stricter than linting: a missing secret is an error there.
        let (serving, refusal) = try await RollgateProcess.run(["serve", "--config", bad])
        #expect(serving != 0 && refusal.contains("environment variable NOT_SET_HERE is not set or empty"))
        #expect(refusal.contains("\(bad):7: services[0].target_group_arn") && !refusal.contains("Usage:"), "the same lines, no usage block: \(refusal)")
    }

    @Test func migrateCreatesTheSchemaOnceAndRefusesANewerDatabase() async throws {
        let database = directory.path + "/migrated.db"
        let latest = try Migrator(directory: migrationsDirectory).latestVersion
        let first = try await RollgateProcess.run(["migrate", "--database", database])
        #expect(first.0 == 0)
        #expect(first.1.contains("applied \((1...latest).map(String.init).joined(separator: ", ")); now at schema version \(latest)"))
        let second = try await RollgateProcess.run(["migrate", "--database", database])
        #expect(second.1.contains("is up to date at schema version \(latest)"))
    }

    @Test func aPortInUseFailsBeforeAnyRunIsTouched() async throws {
        let first = try RollgateProcess(["serve", "--database", directory.path + "/one.db", "--listen", "127.0.0.1:0"])
        let port = try await first.port()
        let (status, output) = try await RollgateProcess.run(["serve", "--database", directory.path + "/two.db", "--listen", "127.0.0.1:\(port)"])
        #expect(status != 0)
        #expect(output.contains("cannot listen on 127.0.0.1:\(port)"))
        #expect(output.contains("--listen 127.0.0.1:8181") && output.contains("ROLLGATE_URL=http://127.0.0.1:8181") && !output.contains("Usage:"),
                "what to do when the port is taken: \(output)")
        first.kill(SIGTERM)
    }

    @Test func theDemoRefusesToListenBeyondLoopback() async throws {
        let (status, output) = try await RollgateProcess.run(["serve", "--listen", "0.0.0.0:0", "--database", directory.path + "/demo.db"])
        #expect(status != 0)
        #expect(output.contains("listens on loopback only"))
    }

    @Test func deployFollowExitsNonZeroWhenTheRunFails() async throws {
        let server = try RollgateProcess(["serve", "--config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        let port = try await server.port()
        let (status, output) = try await RollgateProcess.run(
            ["deploy", "nope", "v1", "--follow", "--server", "http://127.0.0.1:\(port)", "--token", token])
        #expect(status == 1)
        #expect(output.contains("HTTP 404: no service named nope"), "\(output)")
        // A version that is a path is refused before anything is sent, by the same rule as the API's.
        for version in ["/", "/etc/passwd", "a//b", "./x", "x/", "v1/../x"] {
            let (refused, why) = try await RollgateProcess.run(["deploy", "web", version, "--server", "http://127.0.0.1:\(port)", "--token", token])
            #expect(refused == 64 && why.contains("a version is 1-128 of"), "\(version): \(why)")
        }
        let (unauthorized, hint) = try await RollgateProcess.run(["deploy", "web", "v3", "--server", "http://127.0.0.1:\(port)"])
        #expect(unauthorized == 1)
        #expect(hint.contains("HTTP 401") && hint.contains("--token"))
        server.kill(SIGTERM)
    }

    /// A server with run 1 rolling web to v9, and where screenshots go.
    func serverRolling() async throws -> (server: RollgateProcess, port: UInt16, artefacts: String) {
        let server = try RollgateProcess(["serve", "--config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        let port = try await server.port()
        let client = HTTPClient(port: port)
        _ = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                     body: Array(#"{"service":"web","version":"v9","reason":"ship it"}"#.utf8))
        #expect(try await eventually { json(try await client.request("GET", "/api/v1/runs/1"))["status"] == .string("running") })
        let artefacts = repositoryRoot + "/.build/test-artifacts"
        try FileManager.default.createDirectory(atPath: artefacts, withIntermediateDirectories: true)
        return (server, port, artefacts)
    }

    @Test func theStatusPageFollowsTheEventsStreamAndUpdatesInPlace() async throws {
        let (server, port, artefacts) = try await serverRolling()
        let pageViews = "fetch('/metrics').then(r => r.text()).then(t => (t.match(/rollgate_http_requests_total\\{route=\"\\/\",method=\"GET\",status=\"200\"\\} (\\d+)/) || [0, 0])[1])"
        let results = try await browser([
            viewport(1280),
            step(("goto", .string("http://127.0.0.1:\(port)/"))),
            // Mark this document and focus the run's link: both must survive every update.
            eval("window.sameDocument = true; document.querySelector('#runs a').focus(); document.body.innerText.includes('rolling v9')"),
            wait("document.querySelector('#runs .status-succeeded') !== null"),
            eval("[window.sameDocument === true, document.activeElement.getAttribute('href'), document.getElementById('updated').textContent]"),
            eval("document.getElementById('state').getAttribute('aria-live') + ' ' + document.querySelectorAll('th[scope=col]').length"),
            // Idle with the page open (after the last refreshes settle): it follows the
            // stream and asks for nothing.
            step(("sleep", .number(1))), eval(pageViews), step(("sleep", .number(3))), eval(pageViews),
            eval("getComputedStyle(document.body).backgroundColor"),
            step(("screenshot", .string("\(artefacts)/status-1280-light.png"))),
            viewport(1280, dark: true), eval("getComputedStyle(document.body).backgroundColor"),
            step(("screenshot", .string("\(artefacts)/status-1280-dark.png"))),
            viewport(390), overflow, step(("screenshot", .string("\(artefacts)/status-390-light.png"))),
            viewport(390, dark: true), overflow, step(("screenshot", .string("\(artefacts)/status-390-dark.png"))),
        ])
        try #require(results.count == 9, "\(results)")
        #expect(results[0] == .bool(true), "the page showed the roll in progress")
        let after = results[1].array ?? []
        #expect(after.first == .bool(true), "updated in place: the same document, no reload")
        #expect(after.dropFirst().first == .string("/runs/1"), "keyboard focus kept across updates")
        #expect(after.last?.string?.hasPrefix("live, updated") == true, "\(after)")
        #expect(results[2] == .string("polite 14"), "aria-live on the state, column headers: \(results[2])")
        #expect(results[3] == results[4] && results[3] != .string("0"), "no request for the page while idle: \(results[3]) then \(results[4])")
        #expect(results[5] != results[6], "a dark scheme when the system asks for one: \(results[5]) vs \(results[6])")
        #expect(results[7].array?.first == .bool(true), "nothing wider than 390 px: \(results[7])")
        #expect(results[8].array?.first == .bool(true), "nothing wider than 390 px in dark: \(results[8])")
        for name in ["status-1280-light", "status-1280-dark", "status-390-light", "status-390-dark"] {
            let size = (try? FileManager.default.attributesOfItem(atPath: "\(artefacts)/\(name).png")[.size] as? Int) ?? 0
            #expect(size > 1000, "a screenshot in \(artefacts)/\(name).png")
        }
        server.kill(SIGTERM)
    }

    @Test func aRunPageShowsTheTimelineAndTailsTheLogLive() async throws {
        let (server, port, artefacts) = try await serverRolling()
        let results = try await browser([
            viewport(1280),
            step(("goto", .string("http://127.0.0.1:\(port)/runs/1"))),
            eval("window.sameDocument = true; document.getElementById('run').dataset.status"),
            wait("document.getElementById('log').textContent.includes('installing v9 on web-3')"),
            wait("document.querySelector('#run h2') && document.querySelector('#run h2').textContent.includes('succeeded')"),
            wait("document.getElementById('log').textContent.includes('all 3 target(s) run v9 and are healthy')", timeout: 10),
            eval("[window.sameDocument === true, document.getElementById('log').textContent.split('all 3 target(s) run v9').length - 1]"),
            eval("Array.from(document.querySelectorAll('#steps tr')).map(r => r.innerText.split('\\t').slice(0, 2).join(' ')).join('|')"),
            step(("screenshot", .string("\(artefacts)/run-1280-light.png"))),
            viewport(390), overflow, step(("screenshot", .string("\(artefacts)/run-390-light.png"))),
            // The tab says how it ended; polls tailed live folded as the server folds them; the
            // title stays in view at the log's end; the picture is there.
            wait("document.title.startsWith('✓ run 1 succeeded')", timeout: 10),
            eval("""
                [document.title, document.getElementById('favicon').getAttribute('href'),
                 document.querySelectorAll('#log .folded').length > 0,
                 document.querySelectorAll('#log details.log-group').length,
                 (window.scrollTo(0, document.body.scrollHeight), document.querySelector('.run-head').getBoundingClientRect().top >= 0),
                 document.querySelectorAll('#timeline .lane').length]
                """),
            // The server goes away: a banner says so.
            step(("signal", .number(Double(server.process.processIdentifier)))),
            wait("!document.getElementById('offline').hidden", timeout: 15),
            eval("document.getElementById('offline').getBoundingClientRect().top >= 0 && document.getElementById('offline').innerText"),
        ])
        try #require(results.count == 6, "\(results)")
        #expect(results[4] == .array([.string("✓ run 1 succeeded: web v9 · rollgate"), .string("/favicon-idle.svg"), .bool(true), .number(3), .bool(true), .number(3)]),
                "title, icon, folded polls, a group per target, the title in view, a lane per target: \(results[4])")
        #expect(results[5].string?.hasPrefix("Connection to rollgate lost") == true, "\(results[5])")
        #expect(results[0] == .string("running"), "opened while the run rolled")
        #expect(results[1] == .array([.bool(true), .number(1)]), "the log tailed live to its last line, once, and the page reached the end without a reload: \(results[1])")
        let timeline = results[2].string ?? ""
        #expect(timeline.contains("web-1 drain") && timeline.contains("web-3 restore"), "a step per target and phase: \(timeline)")
        #expect(results[3].array?.first == .bool(true), "nothing wider than 390 px: \(results[3])")
        server.kill(SIGTERM)
    }

    /// libcurl (and its TLS, Kerberos and LDAP libraries) is loaded by the first request
    /// rollgate sends: a server that sends none never maps it (issue 10: idle memory).
    @Test func libcurlIsLoadedOnlyWhenSomethingIsSent() async throws {
        let server = try RollgateProcess(["serve", "--config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        let client = HTTPClient(port: try await server.port())
        _ = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                     body: Array(#"{"service":"web","version":"v1"}"#.utf8))
        #expect(try await finished(client, run: 1)["status"] == .string("succeeded"))
        // /proc files say they are empty: read them as a stream.
        let maps = try await runToEnd("/bin/cat", ["/proc/\(server.process.processIdentifier)/maps"]).output
        #expect(!maps.contains("libcurl"), "a roll on the simulated load balancer sends nothing")
        #expect(maps.contains("libmicrohttpd") && maps.contains("libsqlite3"))
        server.kill(SIGTERM)
    }

    @Test func theStateReadsAsTextForTerminals() async throws {
        let server = try RollgateProcess(["serve", "--config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        let client = HTTPClient(port: try await server.port())
        _ = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                     body: Array(#"{"service":"web","version":"v3"}"#.utf8))
        #expect(try await finished(client, run: 1)["status"] == .string("succeeded"))
        let text = try await client.request("GET", "/", headers: [("Accept", "text/plain")])
        #expect(text.header("content-type")?.hasPrefix("text/plain") == true)
        let body = String(decoding: text.body, as: UTF8.self)
        #expect(body.hasPrefix("SERVICE  LAST GOOD  NOW"), "\(body)")
        #expect(body.contains("web      v3") && body.contains("web-2:80") && body.contains("api:ops"))
        #expect(!body.contains("<"), "no HTML in the text")
        #expect(String(decoding: try await client.request("GET", "/status.txt").body, as: UTF8.self) == body)
        let runText = String(decoding: try await client.request("GET", "/runs/1", headers: [("Accept", "text/plain")]).body, as: UTF8.self)
        #expect(runText.hasPrefix("run 1: web v3 succeeded") && runText.contains("TARGET  PHASE"))
        #expect(runText.contains("out of service: web-1 ") && runText.contains("; short for "), "\(runText)")
        let html = String(decoding: try await client.request("GET", "/runs/1").body, as: UTF8.self)
        #expect(html.contains("<table id=\"steps\">") && html.contains("installing v3 on web-1"), "readable without JavaScript")
        #expect(html.contains("<dt>out of service</dt><dd id=\"out-of-service\">web-1 "), "per target and in total on the run page")
        #expect(try await client.request("GET", "/runs/99").status == 404)
        server.kill(SIGTERM)
    }

    /// The CLI over https against rollgate's own TLS listener, by host name, trusting a
    /// certificate made here through --ca-cert or SSL_CERT_FILE.
    @Test func theCLIDeploysOverHTTPSByHostName() async throws {
        let key = directory.path + "/key.pem", cert = directory.path + "/cert.pem"
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        try await offPool { openssl.waitUntilExit() }
        #expect(openssl.terminationStatus == 0, "openssl made a certificate")
        let config = directory.write("tls.yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(directory.path)/tls.db
            tls: {key_file: \(key), cert_file: \(cert)}
            api_tokens: [{name: ops, token_env: TEST_ROLLGATE_TOKEN}]
            services:
              - name: web
                simulated: {targets: 2, drain_seconds: 0.2, healthy_seconds: 0.2}
                poll_interval: 100ms
                hooks: {deploy: echo "installing $ROLLGATE_VERSION"}
            """)
        let server = try RollgateProcess(["serve", "--config", config], environment: ["TEST_ROLLGATE_TOKEN": token])
        let port = try await server.port()
        #expect(server.text.contains("listening on https://127.0.0.1:\(port)/"))
        let url = "https://localhost:\(port)"
        let (status, output) = try await RollgateProcess.run(["deploy", "web", "v7", "--follow", "--server", url, "--token", token, "--ca-cert", cert])
        #expect(status == 0, "\(output)")
        #expect(output.contains("installing v7") && output.contains("run 1 succeeded"))
        let (listed, listing) = try await RollgateProcess.run(["runs", "--server", url], environment: ["SSL_CERT_FILE": cert])
        let listedRun = try Regex("1 +web +v7 +succeeded")
        #expect(listed == 0 && listing.contains(listedRun), "\(listing)")
        let (untrusted, refusal) = try await RollgateProcess.run(["runs", "--server", url])
        #expect(untrusted == 3, "an untrusted certificate is 'cannot reach', exit 3")
        #expect(refusal.contains("--ca-cert FILE or set SSL_CERT_FILE"), "\(refusal)")
        let (_, plain) = try await RollgateProcess.run(["runs", "--server", "http://localhost:\(port)"])
        #expect(!plain.contains(try Regex("1 +web +v7")), "plain http is not served on the TLS port")
        server.kill(SIGTERM)
    }

    @Test func theCLISaysWhenTheServerCannotBeReachedAndHasAVersion() async throws {
        let (status, output) = try await RollgateProcess.run(["logs", "1", "--follow", "--server", "http://localhost:1"])
        #expect(status == 3)
        #expect(output.contains("cannot reach the server"))
        let (version, text) = try await RollgateProcess.run(["--version"])
        #expect(version == 0 && !text.isEmpty)
    }

    @Test func jsonLogsAndTheAccessLogNeverPrintATokenOrSignature() async throws {
        let server = try RollgateProcess(["serve", "--config", config, "--log-format", "json", "--access-log", "--log-level", "info"],
                                         environment: ["TEST_ROLLGATE_TOKEN": token])
        let client = HTTPClient(port: try await server.port())
        let accepted = try await client.request("POST", "/api/v1/deploys", headers: [("Authorization", "Bearer \(token)")],
                                                body: Array(#"{"service":"web","version":"v1"}"#.utf8))
        #expect(accepted.status == 202)
        #expect(try await eventually { server.text.contains("\"http.path\":\"/api/v1/deploys\"") })
        server.kill(SIGTERM)
        let lines = server.text.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(lines.count >= 3)
        #expect(lines.allSatisfy { JSONValue.parse(Array($0.utf8)) != nil }, "every log line is one JSON object")
        let access = lines.compactMap { JSONValue.parse(Array($0.utf8)) }.first { $0["http.path"] == .string("/api/v1/deploys") }
        #expect(access?["http.status"] == .string("202") && access?["http.method"] == .string("POST") && access?["duration_ms"] != nil)
        #expect(!server.text.contains(token))
        let (status, output) = try await RollgateProcess.run(["serve", "--config", config, "--log-level", "loud"])
        #expect(status != 0 && output.contains("--log-level must be one of"))
    }
}
