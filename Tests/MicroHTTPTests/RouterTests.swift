import Testing
@testable import MicroHTTP

@Suite struct RouterTests {
    @Test func matchesLiteralsParametersAndRest() {
        #expect(Router.match([.literal("runs"), .parameter("id")], ["runs", "7"]) == ["id": "7"])
        #expect(Router.match([.literal("runs"), .parameter("id")], ["runs"]) == nil)
        #expect(Router.match([.literal("runs"), .parameter("id")], ["runs", "7", "logs"]) == nil)
        #expect(Router.match([.rest("path")], []) == ["path": ""])
        #expect(Router.match([.rest("path")], ["a", "b.css"]) == ["path": "a/b.css"])
    }

    /// Found by Schemathesis: U+1F3FB (an emoji modifier) after a slash fused with it into one
    /// character, so `/runs/🏻/cancel` matched no POST route and answered 405.
    @Test func pathsSplitOnTheSlashByteNotOnCharacters() {
        #expect(Router.split("/api/v1/runs/\u{1F3FB}/cancel") == ["api", "v1", "runs", "\u{1F3FB}", "cancel"])
        #expect(Router.split("/a/\u{0301}b//c") == ["a", "\u{0301}b", "c"])
    }

    @Test func firstMatchingRouteWinsAndHeadIsGet() async {
        var router = Router()
        router.get("/api/v1/runs/{id}") { .init(contentType: "text/plain", text: "run \($0.parameters["id"]!)") }
        router.get("/{path...}") { _ in .init(contentType: "text/plain", text: "static") }
        #expect(await router.handle(HTTPRequest(method: "GET", path: "/api/v1/runs/3")).body == Array("run 3".utf8))
        #expect(await router.handle(HTTPRequest(method: "HEAD", path: "/api/v1/runs/3")).body == Array("run 3".utf8))
        #expect(await router.handle(HTTPRequest(method: "GET", path: "/x.css")).body == Array("static".utf8))
        #expect(await router.handle(HTTPRequest(method: "POST", path: "/x.css")).status == 405)
    }

    /// Routes are looked up by the path's segment count: a `{name...}` route still takes every
    /// longer path (past the counts indexed too), order among candidates is kept, and a route
    /// longer than the index is still found.
    @Test func segmentCountIndexKeepsEveryMatch() async {
        var router = Router()
        let long = (1...14).map { "s\($0)" }.joined(separator: "/")
        router.get("/files/{path...}") { .init(contentType: "text/plain", text: "files:\($0.parameters["path"]!)") }
        router.get("/files/exact") { _ in .init(contentType: "text/plain", text: "never: the rest route came first") }
        router.get("/" + long) { _ in .init(contentType: "text/plain", text: "long") }
        router.get("/{name}") { .init(contentType: "text/plain", text: "one:\($0.parameters["name"]!)") }
        func body(_ path: String) async -> String { String(decoding: await router.handle(HTTPRequest(method: "GET", path: path)).body, as: UTF8.self) }
        #expect(await body("/files") == "files:")
        #expect(await body("/files/exact") == "files:exact")
        let deep = "/files/" + (1...30).map(String.init).joined(separator: "/")
        #expect(await body(deep) == "files:" + (1...30).map(String.init).joined(separator: "/"))
        #expect(await body("/" + long) == "long")
        #expect(await body("/x") == "one:x")
        #expect(await router.handle(HTTPRequest(method: "GET", path: "/a/b")).status == 404)
        #expect(await router.handle(HTTPRequest(method: "POST", path: "/x")).status == 405)
    }

    @Test func errorBodiesAreValidJSONEvenWithHostileText() {
        let response = HTTPResponse.error(400, code: "bad", message: "quote \" backslash \\ newline \n tab \t nul \u{0}")
        #expect(String(decoding: response.body, as: UTF8.self) ==
                #"{"error":{"code":"bad","message":"quote \" backslash \\ newline \n tab \t nul \u0000"}}"#)
    }
}
