import Configuration
import WireFormat
import ArgumentParser
import Outbound
import RollgateServer
import Rollout
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Exit codes of the client commands (the README lists them).
enum ClientExit {
    /// The run failed or was cancelled, or the server refused the request.
    static let failed: Int32 = 1
    /// The server could not be reached (connection refused, DNS, TLS, timeout).
    static let unreachable: Int32 = 3
}

/// The CLI's one outbound client, made with `--ca-cert` on its first request and reused by
/// every request after it (`deploy --follow` keeps one connection to the server).
enum CLIClient {
    private static let made = Mutex<CurlHTTP?>(nil)

    static func http(caFile: String?) -> CurlHTTP {
        made.withLock { made in
            if let made { return made }
            let client = CurlHTTP(caFile: caFile)
            made = client
            return client
        }
    }
}

struct ClientOptions: ParsableArguments {
    @Flag(help: "Print the server's JSON (stdout) instead of text; the same as -o json.") var json = false
    @Option(name: .short, help: "Output: text, wide (more columns: runs, status) or json.") var output: String?
    @Option(help: "rollgate server URL, http:// or https:// (or ROLLGATE_URL).") var server: String?
    @Option(help: "API token (or ROLLGATE_TOKEN).") var token: String?
    @Option(name: .customLong("ca-cert"), help: "PEM file of a certificate authority to trust for https (or SSL_CERT_FILE).")
    var caCert: String?

    /// `--json` or `-o json`: the server's JSON on stdout, nothing else.
    var wantsJSON: Bool { json || output == "json" }
    /// `-o wide`: the text with more columns (`runs`, `status`).
    var wide: Bool { output == "wide" }

    var base: String {
        var url = server ?? environment["ROLLGATE_URL"] ?? "http://127.0.0.1:8080"
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }

    func validate() throws {
        if let output, !["text", "wide", "json"].contains(output) { throw ValidationError("-o must be text, wide or json (got \(output))") }
        guard base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw ValidationError("--server must start with http:// or https:// (got \(base))")
        }
    }

    /// Sends one request and returns the JSON answer; says what to fix on any failure.
    func call(_ method: String, _ path: String, body: JSONValue? = nil) async throws -> JSONValue {
        var headers: [(String, String)] = []
        if let value = token ?? environment["ROLLGATE_TOKEN"] { headers.append(("Authorization", "Bearer \(value)")) }
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let response: OutboundResponse
        do {
            response = try await CLIClient.http(caFile: caCert).send(OutboundRequest(method: method, url: base + path, headers: headers,
                                                                       body: body?.bytes ?? [], timeout: .seconds(30)))
        } catch {
            printError("rollgate: cannot reach the server: \(error)")
            if "\(error)".contains("SSL") || "\(error)".contains("certificate") {
                printError("hint: to trust the server's certificate, pass --ca-cert FILE or set SSL_CERT_FILE")
            } else {
                printError("hint: is rollgate running there? pass --server URL or set ROLLGATE_URL")
            }
            throw ExitCode(ClientExit.unreachable)
        }
        let json = JSONValue.parse(response.body)
        guard (200..<300).contains(response.status) else {
            let message = json?["error"]?["message"]?.string ?? String(decoding: response.body, as: UTF8.self)
            printError("rollgate: HTTP \(response.status): \(message)")
            // The server's hint names its API's fields (`"force": true`): where the CLI has a
            // flag for it, the flag; otherwise the server's words.
            let code = json?["error"]?["code"]?.string
            if response.status == 401 { printError("hint: pass --token or set ROLLGATE_TOKEN") }
            else if response.status == 423 { printError("hint: pass --wait-for-lock to queue the deploy until the lock ends") }
            else if code == "locked_by_other" { printError("hint: pass --force to replace that lock") }
            else if response.status == 429, let wait = response.header("retry-after") { printError("hint: retry in \(wait) s") }
            else if let hint = json?["error"]?["hint"]?.string { printError("hint: \(hint)") }
            throw ExitCode(ClientExit.failed)
        }
        guard let json else { printError("rollgate: the server answered something that is not JSON"); throw ExitCode(ClientExit.failed) }
        return json
    }
}

/// `TAB`-separated fields, one record a line.
/// Rows as aligned columns (two spaces apart), the header first.
func printTable(_ rows: [[String]], indent: String = "") {
    let count = rows.first?.count ?? 0
    let widths = (0..<count).map { column in rows.map { $0[column].count }.max() ?? 0 }
    for row in rows {
        var line = indent + row.enumerated().map { $0.element + String(repeating: " ", count: widths[$0.offset] - $0.element.count) }
            .joined(separator: "  ")
        while line.last == " " { line.removeLast() }
        print(line)
    }
}

/// A run's version as people read it: `restore web-2`, `v2 (rollback from v3)`, `v3 (rolled back to v2)`.
func versionText(_ run: JSONValue) -> String {
    if run["kind"]?.string == "restore" { return "restore \(run["restore_target"]?.string ?? "")" }
    var text = run["version"]?.string ?? ""
    if let from = run["rollback_from"]?.string { text += " (rollback from \(from))" }
    else if let to = run["rolled_back_to"]?.string { text += " (rolled back to \(to))" }
    return text
}

/// `1.5 s` from a JSON number of milliseconds, as the page says it; `-` for none.
func milliseconds(_ value: JSONValue?) -> String {
    guard let ms = value?.number, ms > 0, ms < 1e15 else { return "-" }
    return Duration.milliseconds(Int64(ms)).readable
}

struct Deploy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the server to deploy SERVICE at VERSION.",
        discussion: "With --follow: exit 0 when the run succeeds, 1 when it fails or is cancelled, 3 when the server cannot be reached.")
    @Argument var service: String
    @Argument var version: String
    @Option(help: "Why (shown in the history).") var reason: String?
    @Flag(name: [.short, .long], help: "Print the live log and exit non-zero if the run fails.") var follow = false
    @Flag(help: "Queue the deploy until the service's lock ends (instead of being refused).") var waitForLock = false
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard Version.isValid(version) else { throw ValidationError("\(version): \(Version.rule); use a tag or commit such as v42 or 1a2b3c4") }
    }

    func run() async throws {
        var fields: [(String, JSONValue)] = [("service", .string(service)), ("version", .string(version))]
        if let reason { fields.append(("reason", .string(reason))) }
        if waitForLock { fields.append(("wait_for_lock", .bool(true))) }
        let run = try await options.call("POST", "/api/v1/deploys", body: .object(fields))
        let id = run["id"]?.int ?? 0
        if options.wantsJSON { print(run.text); if !follow { return } } else {
            print("run \(id): \(service) \(version) \(run["status"]?.string ?? "")" + (run["url"]?.string.map { " \($0)" } ?? ""))
        }
        if follow { try await followLog(of: id, options: options) }
    }
}

/// Why a queued run waits: the service's running run, its lock, or its turn.
func whyQueued(service name: String, options: ClientOptions) async throws -> String {
    let service = (try await options.call("GET", "/api/v1/services")["services"]?.array ?? []).first { $0["name"]?.string == name }
    var reasons: [String] = []
    if let running = service?["running"], running != .null {
        reasons.append("behind run \(running["run_id"]?.int ?? 0) (\(running["version"]?.string ?? "")) rolling \(name)")
    }
    if let lock = service?["lock"], lock != .null {
        reasons.append("\(name) is locked by \(lock["locked_by"]?.string ?? ""): \(lock["reason"]?.string ?? "")"
                       + (lock["expires_at"]?.string.map { " until \($0)" } ?? ""))
    }
    return reasons.isEmpty ? "waiting its turn" : reasons.joined(separator: "; ")
}

/// `AT [TARGET] TEXT`: a log line as `deploy --follow` and `logs` print it.
func logLineText(_ line: JSONValue) -> String {
    "\(line["at"]?.string ?? "") \(line["target_id"]?.string.map { "[\($0)] " } ?? "")\(line["text"]?.string ?? "")"
}

/// Prints a run's log as it grows until the run ends; exits 1 unless it succeeded.
func followLog(of id: Int64, options: ClientOptions) async throws {
    var after: Int64 = 0
    var waitingSaid = "", service: String?, progressSaid = ""
    while true {
        let page = try await options.call("GET", "/api/v1/runs/\(id)/logs?after=\(after)")
        let lines = page["lines"]?.array ?? []
        for line in lines { print(logLineText(line)) }
        fflush(nil)
        after = page["next_after"]?.int ?? after
        let status = page["status"]?.string ?? ""
        // Where the roll is, each time a target is done or another is taken in hand:
        // `progress: 1 of 3 targets done; web-2 draining for 0.4 s of ~10 min`.
        // The run's own record says it (no question to the load balancer, unlike /api/v1/services).
        if status == "running", !lines.isEmpty {
            let run = (try? await options.call("GET", "/api/v1/runs/\(id)")) ?? .null
            if let progress = run["progress"]?.string {
                // Said again when a target is done or another is taken in hand, not every poll.
                let inHand = progress.split(separator: "; ").dropFirst().map { $0.prefix { $0 != " " } }
                let key = "\(run["targets_done"]?.int ?? 0) \(inHand.joined(separator: ","))"
                if key != progressSaid { print("progress: \(progress)"); fflush(nil); progressSaid = key }
            }
        }
        // A queued run says why it waits, each time that changes.
        if status == "queued" {
            if service == nil { service = try await options.call("GET", "/api/v1/runs/\(id)")["service"]?.string ?? "" }
            let why = try await whyQueued(service: service ?? "", options: options)
            if why != waitingSaid { print("run \(id) queued: \(why)"); fflush(nil); waitingSaid = why }
        }
        if (page["lines"]?.array ?? []).isEmpty, !["queued", "running"].contains(status) {
            let final = try await options.call("GET", "/api/v1/runs/\(id)")
            print("run \(id) \(status)\(final["error"]?.string.map { ": \($0)" } ?? "")")
            if status != "succeeded" {
                // What to do now, as the server says it (on stderr: hints, not the result).
                for step in final["next_steps"]?.array ?? [] { printError("hint: \(step["text"]?.string ?? "")") }
                throw ExitCode(ClientExit.failed)
            }
            return
        }
        try await Task.sleep(for: .milliseconds(500))
    }
}

struct Runs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List recent runs, newest first.")
    @Option(help: "Only this service.") var service: String?
    @Option(help: "How many.") var limit: Int = 20
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var query = "?limit=\(limit)"
        if let service { query += "&service=\(service)" }
        let page = try await options.call("GET", "/api/v1/runs" + query)
        if options.wantsJSON { print(page.text); return }
        let wide = options.wide
        printTable([["ID", "SERVICE", "VERSION", "STATUS", "CREATED", "REQUESTED BY", "REASON", "ERROR"]
                    + (wide ? ["STARTED", "FINISHED", "ROLLED BY", "SHORT FOR", "OUT OF SERVICE"] : [])]
                   + (page["runs"]?.array ?? []).map { run in
            [run["id"]?.int.map(String.init) ?? "", run["service"]?.string ?? "", versionText(run),
             run["status"]?.string ?? "", run["created_at"]?.string ?? "", run["requested_by"]?.string ?? "",
             run["reason"]?.string ?? "", run["error"]?.string ?? ""]
            + (wide ? [run["started_at"]?.string ?? "-", run["finished_at"]?.string ?? "-", run["rolled_by"]?.string ?? "-",
                       milliseconds(run["short_of_capacity_ms"]), milliseconds(run["out_of_service_ms"])] : [])
        })
        // Capacity silently lost is the worst news a deploy tool can hide: say it here too.
        if let services = try? await options.call("GET", "/api/v1/services")["services"]?.array {
            for line in leftOutLines(services) { print(line) }
        }
    }
}

struct RunDetail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Show one run with its steps.")
    @Argument(help: "The run's id.") var id: Int64
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let run = try await options.call("GET", "/api/v1/runs/\(id)")
        if options.wantsJSON { print(run.text); return }
        print("run \(id): \(run["service"]?.string ?? "") \(versionText(run)) \(run["status"]?.string ?? "")")
        print("requested by \(run["requested_by"]?.string ?? "")\(run["reason"]?.string.map { ", because: \($0)" } ?? "")")
        print("created \(run["created_at"]?.string ?? ""), started \(run["started_at"]?.string ?? "-"), finished \(run["finished_at"]?.string ?? "-")"
              + (run["rolled_by"]?.string.map { ", rolled by \($0)" } ?? ""))
        if let error = run["error"]?.string { print("error\(run["error_code"]?.string.map { " (\($0))" } ?? ""): \(error)") }
        printTable([["TARGET", "PHASE", "STATUS", "STARTED", "FINISHED", "ERROR"]] + (run["steps"]?.array ?? []).map { step in
            [step["target_id"]?.string ?? "", step["phase"]?.string ?? "", step["status"]?.string ?? "",
             step["started_at"]?.string ?? "", step["finished_at"]?.string ?? "", step["error"]?.string ?? ""]
        })
        for step in run["next_steps"]?.array ?? [] { print("next: \(step["text"]?.string ?? "")") }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a run's log; --follow re-attaches to a running run.")
    @Argument(help: "The run's id.") var id: Int64
    @Flag(help: "Keep printing until the run ends; exit 1 unless it succeeds.") var follow = false
    @OptionGroup var options: ClientOptions

    func run() async throws {
        if follow { try await followLog(of: id, options: options); return }
        var after: Int64 = 0
        var all: [JSONValue] = []
        while true {
            let page = try await options.call("GET", "/api/v1/runs/\(id)/logs?after=\(after)&limit=5000")
            let lines = page["lines"]?.array ?? []
            if options.wantsJSON { all += lines } else { for line in lines { print(logLineText(line)) } }
            guard !lines.isEmpty else { break }
            after = page["next_after"]?.int ?? after
        }
        if options.wantsJSON { print(JSONValue.object([("run_id", .number(Double(id))), ("lines", .array(all))]).text) }
    }
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a run: a queued one at once, a running one once the target in hand is back.")
    @Argument(help: "The run's id.") var id: Int64
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let run = try await options.call("POST", "/api/v1/runs/\(id)/cancel")
        if options.wantsJSON { print(run.text); return }
        print(run["status"]?.string == "cancelled" ? "run \(id) cancelled before it started"
              : "run \(id): cancel requested; it stops once the target in hand is back in service")
    }
}

struct Promote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "End a running run's canary bake now: the rest of its targets follow at once.")
    @Argument(help: "The run's id.") var id: Int64
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let run = try await options.call("POST", "/api/v1/runs/\(id)/promote")
        if options.wantsJSON { print(run.text); return }
        print("run \(id): promoted; the bake ends at its next poll and the rest of the targets follow")
    }
}

struct Rollback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Deploy the last good version before the current one (a run like any deploy).")
    @Argument(help: "The service.") var service: String
    @Option(help: "Why (recorded with the run).") var reason: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var fields: [(String, JSONValue)] = []
        if let reason { fields.append(("reason", .string(reason))) }
        let run = try await options.call("POST", "/api/v1/services/\(service)/rollback", body: JSONValue.object(fields))
        if options.wantsJSON { print(run.text); return }
        print("run \(run["id"]?.int ?? 0): \(service) \(run["version"]?.string ?? "?") queued (\(run["reason"]?.string ?? "rollback"))")
    }
}

/// The targets each service knows, with the ones left out of the load balancer called out.
func leftOutLines(_ services: [JSONValue]) -> [String] {
    var lines: [String] = []
    for service in services {
        for target in service["targets"]?.array ?? [] where target["state"]?.string == "left_out" {
            let left = target["left_out"]
            lines.append("LEFT OUT\t\(service["name"]?.string ?? "")\t\(target["id"]?.string ?? "")\tsince \(left?["since"]?.string ?? "")\t\(left?["reason"]?.string ?? "")")
        }
    }
    return lines
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show each service: version, lock, running run, every target's state.")
    @Argument(help: "Only this service.") var service: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var services = try await options.call("GET", "/api/v1/services")["services"]?.array ?? []
        if let service {
            services = services.filter { $0["name"]?.string == service }
            guard !services.isEmpty else { printError("rollgate: no service named \(service)"); throw ExitCode(ClientExit.failed) }
        }
        if options.wantsJSON { print(JSONValue.object([("services", .array(services))]).text); return }
        for service in services {
            var line = "\(service["name"]?.string ?? "")\tlast good: \(service["last_good_version"]?.string ?? "none")"
            if let running = service["running"], running != .null {
                line += "\trolling \(running["version"]?.string ?? "") (run \(running["run_id"]?.int ?? 0)): "
                    + (running["progress"]?.string ?? "\(running["target_id"]?.string ?? "") \(running["phase"]?.string ?? "")")
            } else {
                line += "\tidle"
            }
            if let lock = service["lock"], lock != .null {
                line += "\tLOCKED by \(lock["locked_by"]?.string ?? ""): \(lock["reason"]?.string ?? "")"
                if let until = lock["expires_at"]?.string { line += " (until \(until))" }
            }
            print(line)
            if let fleet = service["fleet"]?.string { print("  \(fleet)") }
            let queued = (service["queued"]?.array ?? []).compactMap(\.int)
            if !queued.isEmpty {
                let why = service["lock"].map { $0 == .null ? "" : " (behind the lock)" } ?? ""
                print("  queued: \(queued.map { "run \($0)" }.joined(separator: ", "))\(why)")
            }
            for changed in service["health_check_changed"]?.array ?? [] {
                let original = changed["original"] ?? .null
                print("  health check changed by run \(changed["run_id"]?.int ?? 0) for the roll (since \(changed["since"]?.string ?? "")): "
                      + "the group's own (interval \(original["interval_s"]?.int ?? 0)s, timeout \(original["timeout_s"]?.int ?? 0)s, "
                      + "healthy threshold \(original["healthy_threshold"]?.int ?? 0)) is put back when the run ends")
            }
            // The targets as a table (`-o wide`: since when and by which run each has its version),
            // then what to do about each one left out.
            var rows = [["TARGET", "VERSION", "STATE", "DETAIL"] + (options.wide ? ["VERSION SINCE", "BY RUN"] : [])]
            var next: [String] = []
            for target in service["targets"]?.array ?? [] {
                var detail = target["reason"]?.string ?? ""
                if let left = target["left_out"], left != .null, target["state"]?.string == "left_out" {
                    let name = service["name"]?.string ?? "", id = target["id"]?.string ?? ""
                    detail = "left out by run \(left["run_id"]?.int ?? 0) \(left["reason"]?.string ?? "")"
                    next.append("next for \(id): fix it, then `rollgate restore \(name) \(id)`; or `rollgate forget \(name) \(id)` if it is gone for good"
                                + " (the next deploy also takes it on)")
                }
                rows.append(["\(target["id"]?.string ?? ""):\(target["port"]?.int ?? 0)", target["version"]?.string ?? "unknown",
                             target["state"]?.string ?? "", detail]
                            + (options.wide ? [target["version_since"]?.string ?? "-", target["version_run_id"]?.int.map(String.init) ?? "-"] : []))
            }
            if rows.count > 1 { printTable(rows, indent: "  ") }
            for line in next { print("  " + line) }
        }
    }
}

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "How long a roll of a service will take, what bounds it, and what would make it faster.",
        discussion: "From the target group's settings (deregistration delay, health check), the service's plan and its last runs.")
    @Argument(help: "The service.") var service: String
    @Argument(help: "The version you would deploy (the forecast is the same for any).") var version: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let plan = try await options.call("GET", "/api/v1/services/\(service)/plan")
        if options.wantsJSON { print(plan.text); return }
        if let version { print("rolling \(service) to \(version):") }
        for line in plan["summary"]?.array ?? [] { print(line.string ?? "") }
    }
}

struct Lock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Lock a service: deploys are refused until unlocked or expired.")
    @Argument var service: String
    @Option(help: "Why (shown to whoever tries to deploy).") var reason: String
    @Option(name: .customLong("for"), help: "Expire after this long, e.g. 30m or 2h (default: until unlocked).") var duration: String?
    @Flag(help: "Replace a lock someone else holds (its reason and expiry are lost).") var force = false
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if let duration, DurationText.parse(duration) == nil { throw ValidationError("--for must be a duration like 30m or 2h") }
    }

    func run() async throws {
        var fields: [(String, JSONValue)] = [("reason", .string(reason))]
        if let duration { fields.append(("expires_in", .string(duration))) }
        if force { fields.append(("force", .bool(true))) }
        let lock = try await options.call("POST", "/api/v1/services/\(service)/lock", body: .object(fields))
        if options.wantsJSON { print(lock.text); return }
        print("\(service) locked by \(lock["locked_by"]?.string ?? "") until \(lock["expires_at"]?.string ?? "unlocked"): \(reason)")
    }
}

struct Unlock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unlock a service; deploys that waited for the lock go on.")
    @Argument var service: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let unlocked = try await options.call("DELETE", "/api/v1/services/\(service)/lock")
        if options.wantsJSON { print(unlocked.text); return }
        print("\(service) unlocked")
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put a left-out target back: register it and wait until healthy, no hooks (after fixing it by hand).")
    @Argument var service: String
    @Argument var target: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let run = try await options.call("POST", "/api/v1/services/\(service)/targets/\(target)/restore")
        if options.wantsJSON { print(run.text); return }
        print("run \(run["id"]?.int ?? 0): restore \(run["restore_target"]?.string ?? target) in \(service) \(run["status"]?.string ?? "")")
    }
}

struct Forget: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Forget a left-out target whose instance is gone for good.")
    @Argument var service: String
    @Argument var target: String
    @Option(help: "Why (recorded with your name, e.g. \"instance terminated\").") var reason: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let forgotten = try await options.call("POST", "/api/v1/services/\(service)/targets/\(target)/forget",
                                               body: reason.map { .object([("reason", .string($0))]) })
        if options.wantsJSON { print(forgotten.text); return }
        print("\(target) forgotten in \(service): no longer counted as left out")
    }
}
