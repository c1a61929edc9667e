@testable import Configuration
@testable import HTTPAPI
@testable import WireFormat
import Foundation
import Testing
import HTTPTesting
@testable import RollgateServer
import Rollout

/// /openapi.json is a valid OpenAPI 3.1 document, describes every route the server has and
/// nothing it lacks, and what the server answers matches it.
@Suite struct OpenAPITests {
    let directory = TempDirectory()

    func app() throws -> App {
        var config = Config(database: directory.path + "/openapi.db", apiTokens: [APIToken(name: "ci", secret: "openapi-token-0123456789")],
                            services: [quickService("web")])
        config.publicRead = true
        return try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory, environment: [:], logger: .quiet)
    }

    @Test func theDocumentIsValidOpenAPI31() async throws {
        let (status, output) = try await runToEnd("/usr/bin/env", ["python3", "-m", "openapi_spec_validator", publicDirectory + "/openapi.json"])
        #expect(status == 0, "openapi-spec-validator: \(output) (make test installs it)")
    }

    @Test func everyRouteIsDocumentedAndEveryDocumentedRouteExists() async throws {
        let app = try app()
        let document = json(await app.call("GET", "/openapi.json"))
        #expect(document["openapi"] == .string("3.1.0"))
        guard case .object(let paths)? = document["paths"] else { Issue.record("no paths"); return }
        var documented: Set<String> = []
        for (path, item) in paths {
            guard case .object(let operations) = item else { continue }
            for (method, _) in operations { documented.insert("\(method.uppercased()) \(path.replacingOccurrences(of: "{target}", with: "{target}"))") }
        }
        let routed = Set(app.router.patterns.filter { !$0.hasSuffix("{path...}") })
        #expect(routed.subtracting(documented).isEmpty, "routes without documentation: \(routed.subtracting(documented).sorted())")
        #expect(documented.subtracting(routed).isEmpty, "documented routes the server lacks: \(documented.subtracting(routed).sorted())")
    }

    @Test func answersCarryTheDocumentedFields() async throws {
        let app = try app()
        let document = json(await app.call("GET", "/openapi.json"))
        let required = { (schema: String) -> [String] in
            document["components"]?["schemas"]?[schema]?["required"]?.array?.compactMap(\.string) ?? []
        }
        let run = json(await app.call("POST", "/api/v1/deploys", headers: ["Authorization": "Bearer openapi-token-0123456789"],
                                      body: #"{"service":"web","version":"v1"}"#))
        for key in required("Run") { #expect(run[key] != nil, "Run.\(key)") }
        #expect(run["error_code"] == .null, "a run that has not failed has no code")
        let codes = document["components"]?["schemas"]?["Run"]?["properties"]?["error_code"]?["enum"]?.array?.compactMap(\.string) ?? []
        #expect(codes == RunFailure.Code.allCases.map(\.rawValue), "the document lists every failure code, in order")
        let service = json(await app.call("GET", "/api/v1/services"))["services"]?.array?.first ?? .null
        for key in required("Service") { #expect(service[key] != nil, "Service.\(key)") }
        let error = json(await app.call("GET", "/api/v1/runs/999"))
        #expect(error["error"]?["code"] != nil && error["error"]?["message"] != nil)
    }
}

/// Schemathesis (PyPI) generates requests from /openapi.json against the real binary, with
/// a token and every webhook door open: no 5xx, no status code or content type the document
/// does not list, bodies that match their schemas, and the server healthy afterwards.
/// `ROLLGATE_FUZZ_EXAMPLES` (default 50 per operation and phase) sets how far it goes.
@Suite struct SchemathesisTests {
    let directory = TempDirectory()
    let token = "fuzz-token-0123456789abcdef"

    @Test func theAPIHoldsToItsDescriptionUnderGeneratedRequests() async throws {
        let config = directory.write("fuzz.yaml", """
            listen: 127.0.0.1:0
            public_read: true   # these tests are about other things; AccessTests covers reads
            database: \(directory.path)/fuzz.db
            api_tokens:
              - {name: ci, token_env: FUZZ_TOKEN}
            rate_limit: {writes_per_second: 1000, burst: 1000}
            github: {secret_env: FUZZ_SECRET}
            gitlab: {token_env: FUZZ_SECRET}
            webhooks: {secret_env: FUZZ_WHSEC}
            slack: {signing_secret_env: FUZZ_SECRET}
            services:
              - name: web
                simulated: {targets: 2, drain_seconds: 0.2, healthy_seconds: 0.1}
                poll_interval: 100ms
                github: {repository: acme/web, branch: main}
                gitlab: {project: acme/web, branch: main}
                hooks: {deploy: "true"}
            """)
        let server = try RollgateProcess(["serve", "--config", config],
                                         environment: ["FUZZ_TOKEN": token, "FUZZ_SECRET": "fuzz-secret-0123456789",
                                                       "FUZZ_WHSEC": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        let port = try await server.port()
        let examples = ProcessInfo.processInfo.environment["ROLLGATE_FUZZ_EXAMPLES"] ?? "50"
        let (status, output) = try await runToEnd("/usr/bin/env", [
            "python3", "-m", "schemathesis.cli", "run", "http://127.0.0.1:\(port)/openapi.json",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases", "examples,coverage,fuzzing", "--max-examples", examples,
            // One worker: with two, Schemathesis's generator once failed inside Python itself
            // ("AST constructor recursion depth mismatch", a runtime error, not an answer).
            "--workers", "1",
            "-H", "Authorization: Bearer \(token)",
            // The machine is shared with the rest of the suite: a slow answer is not a wrong one.
            "--request-timeout", "30",
            // The events stream never ends by design: a generated request would wait forever.
            "--exclude-path", "/api/v1/events",
        ])
        let artefacts = repositoryRoot + "/.build/test-artifacts"
        try? FileManager.default.createDirectory(atPath: artefacts, withIntermediateDirectories: true)
        try? output.write(toFile: artefacts + "/schemathesis.txt", atomically: true, encoding: .utf8)
        #expect(status == 0, "schemathesis found answers the document does not describe (make test installs it; all of it in .build/test-artifacts/schemathesis.txt):\n\(output.suffix(6000))")
        let client = HTTPClient(port: port)
        let health = try await client.request("GET", "/healthz")
        #expect(health.status == 200 && server.process.isRunning, "the server is healthy after the run: \(health.status)")
        server.kill(SIGTERM)
    }
}
