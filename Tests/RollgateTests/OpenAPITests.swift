import Foundation
import Testing
@testable import Rollgate
import Rollout

/// /openapi.json is a valid OpenAPI 3.1 document, describes every route the server has and
/// nothing it lacks, and what the server answers matches it.
@Suite struct OpenAPITests {
    let directory = TempDirectory()

    func app() throws -> App {
        try App(config: Config(database: directory.path + "/openapi.db", apiTokens: [APIToken(name: "ci", secret: "openapi-token-0123456789")],
                               services: [quickService("web")]),
                migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory, environment: [:], logger: .quiet)
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
        let service = json(await app.call("GET", "/api/v1/services"))["services"]?.array?.first ?? .null
        for key in required("Service") { #expect(service[key] != nil, "Service.\(key)") }
        let error = json(await app.call("GET", "/api/v1/runs/999"))
        #expect(error["error"]?["code"] != nil && error["error"]?["message"] != nil)
    }
}
