import Testing
@testable import MicroHTTP
#if canImport(Glibc)
import Glibc
#endif

@Suite struct StaticFilesTests {
    let base: String
    var root: String { base + "/public" }

    init() throws {
        var template = Array("/tmp/rollgate-static-XXXXXX".utf8CString)
        base = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        mkdir(base + "/public", 0o755)
        mkdir(base + "/public/css", 0o755)
        try write(base + "/secret.txt", "top secret")
        try write(base + "/public/index.html", "<h1>hi</h1>")
        try write(base + "/public/css/site.css", "body{}")
        try write(base + "/public/.env", "TOKEN=x")
    }

    func write(_ path: String, _ text: String) throws {
        #expect(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
    }

    @Test func servesFilesUnderTheRootWithTheirType() throws {
        let files = StaticFiles(root: root)
        let index = try #require(try files.load(""))
        #expect(String(decoding: index.bytes, as: UTF8.self) == "<h1>hi</h1>")
        #expect(index.contentType == "text/html; charset=utf-8")
        #expect(try files.load("css/site.css")?.contentType == "text/css; charset=utf-8")
        #expect(try files.load("missing.js") == nil)
        #expect(try files.load("css") == nil, "a directory is not a file")
    }

    @Test func refusesEveryWayOut() throws {
        let files = StaticFiles(root: root)
        for attempt in ["../secret.txt", "css/../../secret.txt", "/etc/passwd", "..", "./index.html", "css//site.css",
                        "%2e%2e/secret.txt", "..%2fsecret.txt", "index.html\0.png", "..\\secret.txt", ".env"] {
            #expect(throws: StaticFiles.Refused.self, "\(attempt)") { _ = try files.load(attempt) }
        }
    }

    @Test func traversalOverHTTPNeverReachesTheFile() async throws {
        var router = Router()
        let files = StaticFiles(root: root)
        router.get("/{path...}") { request in
            do {
                guard let file = try files.load(request.parameters["path"] ?? "") else { return .error(404, code: "not_found", message: "no") }
                return HTTPResponse(status: 200, headers: [("Content-Type", file.contentType)], body: file.bytes)
            } catch { return .error(400, code: "invalid_path", message: "no") }
        }
        let live = try LiveServer(router: router)
        for path in ["/../secret.txt", "/css/../../secret.txt", "/%2e%2e/secret.txt", "/%2e%2e%2fsecret.txt", "/..%252fsecret.txt", "/.env"] {
            let response = try await live.client.request("GET", path)
            #expect(response.status == 400 || response.status == 404, "\(path): \(response.status)")
            #expect(!text(response).contains("secret") && !text(response).contains("TOKEN"), "\(path)")
        }
        #expect(try await live.client.request("GET", "/css/site.css").status == 200)
        await live.stop()
    }
}

import FoundationEssentials
