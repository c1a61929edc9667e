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
    }
}
