import Foundation
import Testing
import HTTPTesting
@testable import WireFormat

/// The configs in examples/ are the README's first steps: each passes check-config, and the
/// first one serves and rolls as the README says (issue 20).
@Suite(.serialized) struct ExamplesTests {
    let directory = TempDirectory()
    let token = "examples-token-0123456789abcdef"

    @Test func everyExampleConfigPassesCheckConfig() async throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot + "/examples").filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files == ["aws-target-group.yaml", "first-service.yaml"], "a new example gets checked here too: \(files)")
        let environment = ["ROLLGATE_TOKEN": token, "GITHUB_WEBHOOK_SECRET": "github-secret-0123456789",
                           "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX"]
        for file in files {
            let (status, output) = try await RollgateProcess.run(["check-config", repositoryRoot + "/examples/" + file], environment: environment)
            #expect(status == 0 && output.contains("OK, 1 service(s)"), "\(file): \(output)")
        }
    }

    @Test func theFirstServiceExampleServesAndRollsAsTheREADMESays() async throws {
        let server = try RollgateProcess(["serve", "--config", repositoryRoot + "/examples/first-service.yaml",
                                          "--listen", "127.0.0.1:0", "--database", directory.path + "/first.db"],
                                         environment: ["ROLLGATE_TOKEN": token])
        defer { server.kill(SIGTERM) }
        let port = try await server.port()
        // The CLI takes the token from ROLLGATE_TOKEN and the server from ROLLGATE_URL.
        let (status, output) = try await RollgateProcess.run(["deploy", "web", "v1", "-f"],
                                                             environment: ["ROLLGATE_TOKEN": token, "ROLLGATE_URL": "http://127.0.0.1:\(port)"])
        #expect(status == 0 && output.contains("all 3 target(s) run v1 and are healthy") && output.contains("run 1 succeeded"), "\(output)")
        let (_, listing) = try await RollgateProcess.run(["status"], environment: ["ROLLGATE_TOKEN": token, "ROLLGATE_URL": "http://127.0.0.1:\(port)"])
        #expect(listing.contains("serving 3 of 3; all on v1"), "\(listing)")
    }
}
