import ArgumentParser
import MicroHTTP
import Rollgate
#if canImport(Glibc)
import Glibc
#endif

struct ClientOptions: ParsableArguments {
    @Option(help: "rollgate server URL (or ROLLGATE_URL).") var server: String?
    @Option(help: "API token (or ROLLGATE_TOKEN).") var token: String?

    func client() throws -> HTTPClient {
        try HTTPClient(base: server ?? environment["ROLLGATE_URL"] ?? "http://127.0.0.1:8080")
    }

    var headers: [(String, String)] {
        let value = token ?? environment["ROLLGATE_TOKEN"]
        return value.map { [("Authorization", "Bearer \($0)")] } ?? []
    }
}

func check(_ response: HTTPResponse) throws -> JSONValue {
    let body = JSONValue.parse(response.body)
    guard (200..<300).contains(response.status) else {
        let message = body?["error"]?["message"]?.string ?? String(decoding: response.body, as: UTF8.self)
        print("rollgate: HTTP \(response.status): \(message)")
        if response.status == 401 { print("hint: pass --token or set ROLLGATE_TOKEN") }
        throw ExitCode(1)
    }
    guard let body else { print("rollgate: the server answered something that is not JSON"); throw ExitCode(1) }
    return body
}

struct Deploy: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask the server to deploy SERVICE at VERSION.")
    @Argument var service: String
    @Argument var version: String
    @Option(help: "Why (shown in the history).") var reason: String?
    @Flag(help: "Print the live log and exit non-zero if the run fails.") var follow = false
    @OptionGroup var options: ClientOptions

    func run() throws {
        let client = try options.client()
        var fields: [(String, JSONValue)] = [("service", .string(service)), ("version", .string(version))]
        if let reason { fields.append(("reason", .string(reason))) }
        let run = try check(try client.send("POST", "/api/v1/deploys",
                                            headers: options.headers + [("Content-Type", "application/json")],
                                            body: JSONValue.object(fields).bytes))
        let id = run["id"]?.int ?? 0
        print("run \(id): \(service) \(version) \(run["status"]?.string ?? "")")
        guard follow else { return }
        var after: Int64 = 0
        while true {
            let page = try check(try client.send("GET", "/api/v1/runs/\(id)/logs?after=\(after)"))
            for line in page["lines"]?.array ?? [] {
                let target = line["target_id"]?.string.map { "[\($0)] " } ?? ""
                print("\(line["at"]?.string ?? "") \(target)\(line["text"]?.string ?? "")")
            }
            after = page["next_after"]?.int ?? after
            let status = page["status"]?.string ?? ""
            if (page["lines"]?.array ?? []).isEmpty, !["queued", "running"].contains(status) {
                let final = try check(try client.send("GET", "/api/v1/runs/\(id)"))
                print("run \(id) \(status)\(final["error"]?.string.map { ": \($0)" } ?? "")")
                if status != "succeeded" { throw ExitCode(1) }
                return
            }
            usleep(500_000)
        }
    }
}

struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List recent runs, newest first.")
    @Option(help: "Only this service.") var service: String?
    @Option(help: "How many.") var limit: Int = 20
    @OptionGroup var options: ClientOptions

    func run() throws {
        var query = "?limit=\(limit)"
        if let service { query += "&service=\(service)" }
        let page = try check(try options.client().send("GET", "/api/v1/runs" + query))
        for run in page["runs"]?.array ?? [] {
            let fields = [run["id"]?.int.map(String.init) ?? "", run["service"]?.string ?? "", run["version"]?.string ?? "",
                          run["status"]?.string ?? "", run["created_at"]?.string ?? "", run["error"]?.string ?? ""]
            print(fields.joined(separator: "\t"))
        }
        // Capacity silently lost is the worst news a deploy tool can hide: say it here too.
        if let services = try? check(try options.client().send("GET", "/api/v1/services"))["services"]?.array {
            for line in leftOutLines(services) { print(line) }
        }
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

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show each service: version, lock, running run, every target's state.")
    @OptionGroup var options: ClientOptions

    func run() throws {
        let services = try check(try options.client().send("GET", "/api/v1/services"))["services"]?.array ?? []
        for service in services {
            var line = "\(service["name"]?.string ?? "")\tlast good: \(service["last_good_version"]?.string ?? "none")"
            if let running = service["running"], running != .null {
                line += "\trolling \(running["version"]?.string ?? "") (run \(running["run_id"]?.int ?? 0)): \(running["target_id"]?.string ?? "") \(running["phase"]?.string ?? "")"
            } else {
                line += "\tidle"
            }
            if let lock = service["lock"], lock != .null {
                line += "\tLOCKED by \(lock["locked_by"]?.string ?? ""): \(lock["reason"]?.string ?? "")"
                if let until = lock["expires_at"]?.string { line += " (until \(until))" }
            }
            print(line)
            for target in service["targets"]?.array ?? [] {
                var text = "  \(target["id"]?.string ?? ""):\(target["port"]?.int ?? 0)\t\(target["state"]?.string ?? "")"
                if let reason = target["reason"]?.string { text += " (\(reason))" }
                if let left = target["left_out"], left != .null, target["state"]?.string == "left_out" {
                    text += "\tleft out by run \(left["run_id"]?.int ?? 0): \(left["reason"]?.string ?? ""); `rollgate deploy` includes it, or `rollgate restore`/`forget`"
                }
                print(text)
            }
        }
    }
}

struct Lock: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Lock a service: deploys are refused until unlocked or expired.")
    @Argument var service: String
    @Option(help: "Why (shown to whoever tries to deploy).") var reason: String
    @Option(name: .customLong("for"), help: "Expire after this long, e.g. 30m or 2h (default: until unlocked).") var duration: String?
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if let duration, DurationText.parse(duration) == nil { throw ValidationError("--for must be a duration like 30m or 2h") }
    }

    func run() throws {
        var fields: [(String, JSONValue)] = [("reason", .string(reason))]
        if let duration { fields.append(("expires_in", .string(duration))) }
        let lock = try check(try options.client().send("POST", "/api/v1/services/\(service)/lock",
                                                       headers: options.headers + [("Content-Type", "application/json")],
                                                       body: JSONValue.object(fields).bytes))
        print("\(service) locked by \(lock["locked_by"]?.string ?? "") until \(lock["expires_at"]?.string ?? "unlocked"): \(reason)")
    }
}

struct Unlock: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unlock a service; deploys that waited for the lock go on.")
    @Argument var service: String
    @OptionGroup var options: ClientOptions

    func run() throws {
        _ = try check(try options.client().send("DELETE", "/api/v1/services/\(service)/lock", headers: options.headers))
        print("\(service) unlocked")
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put a left-out target back: register it and wait until healthy, no hooks (after fixing it by hand).")
    @Argument var service: String
    @Argument var target: String
    @OptionGroup var options: ClientOptions

    func run() throws {
        let run = try check(try options.client().send("POST", "/api/v1/services/\(service)/targets/\(target)/restore",
                                                      headers: options.headers))
        print("run \(run["id"]?.int ?? 0): restore \(target) in \(service) \(run["status"]?.string ?? "")")
    }
}

struct Forget: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Forget a left-out target whose instance is gone for good.")
    @Argument var service: String
    @Argument var target: String
    @OptionGroup var options: ClientOptions

    func run() throws {
        _ = try check(try options.client().send("POST", "/api/v1/services/\(service)/targets/\(target)/forget",
                                                headers: options.headers))
        print("\(target) forgotten in \(service): no longer counted as left out")
    }
}
