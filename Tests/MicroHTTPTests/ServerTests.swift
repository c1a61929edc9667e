import Testing
@testable import MicroHTTP
import CMicroHTTPDErrors
import HTTPTesting
#if canImport(Glibc)
import Glibc
#endif

/// A real server on a free loopback port, stopped at the end of each test.
struct LiveServer {
    let server: HTTPServer
    var client: HTTPClient { HTTPClient(port: server.port, timeoutSeconds: 10) }

    init(maxBodyBytes: Int = 1 << 20, router: Router) throws {
        server = HTTPServer(configuration: HTTPServerConfiguration(port: 0, maxBodyBytes: maxBodyBytes), router: router)
        try server.start()
    }

    func stop() async { await server.stop(grace: .seconds(2)) }
}

/// Counts handlers in flight and the most seen at once.
final class ConcurrencyGauge: Sendable {
    private let state = Mutex<(now: Int, peak: Int)>((0, 0))
    func enter() -> Int { state.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now); return $0.peak } }
    func leave() { state.withLock { $0.now -= 1 } }
    var peak: Int { state.withLock { $0.peak } }
}
let concurrency = ConcurrencyGauge()
let arrivals = ConcurrencyGauge()

import Synchronization

func text(_ response: HTTPResponse) -> String { String(decoding: response.body, as: UTF8.self) }

var testRouter: Router {
    var router = Router()
    router.get("/hello/{name}") { request in
        HTTPResponse(contentType: "text/plain", text: "hello \(request.parameters["name"] ?? "?") q=\(request.query["q"] ?? "")")
    }
    router.post("/echo") { request in
        HTTPResponse(status: 201, headers: [("Content-Type", "application/octet-stream")], body: request.body)
    }
    router.get("/slow/{ms}") { request in
        let ms = Int(request.parameters["ms"] ?? "0") ?? 0
        try? await Task.sleep(for: .milliseconds(ms))
        return HTTPResponse(contentType: "text/plain", text: "slept \(ms)")
    }
    router.get("/concurrent") { _ in
        let now = concurrency.enter()
        try? await Task.sleep(for: .milliseconds(200))
        concurrency.leave()
        return HTTPResponse(contentType: "text/plain", text: "peak so far \(now)")
    }
    router.get("/arrive-then-sleep") { _ in
        _ = arrivals.enter()
        try? await Task.sleep(for: .milliseconds(300))
        return HTTPResponse(contentType: "text/plain", text: "finished")
    }
    router.get("/header") { request in
        HTTPResponse(contentType: "text/plain", text: request.header("X-Thing") ?? "none")
    }
    router.post("/echo-now", immediate: { request in
        HTTPResponse(status: 201, headers: [("Content-Type", "text/plain")], body: Array("now:".utf8) + request.body)
    })
    router.get("/fields", immediate: { request in
        HTTPResponse(contentType: "text/plain", text: request.headers.filter { $0.name.hasPrefix("x-") }.map { "\($0.name)=\($0.value)" }.joined(separator: ";")
                     + " first=\(request.header("X-THING") ?? "none") q=\(request.query["q"] ?? "none")")
    })
    return router
}

@Suite struct ServerTests {
    @Test func routesWithPathParametersAndQuery() async throws {
        let live = try LiveServer(router: testRouter)
        let response = try await live.client.request("GET", "/hello/world?q=a%20b")
        #expect(response.status == 200)
        #expect(text(response) == "hello world q=a b")
        #expect(try await live.client.request("GET", "/header", headers: [("x-thing", "yes")]).body == Array("yes".utf8))
        await live.stop()
    }

    /// Header fields arrive in order with their names lower-cased; a name sent twice keeps both
    /// fields and `header(_:)` answers the first, whatever the case asked for. Query names are
    /// matched without regard to case, as they always were.
    @Test func headerFieldsInOrderLowerCasedFirstWins() async throws {
        let live = try LiveServer(router: testRouter)
        let response = try await live.client.request("GET", "/fields?Q=yes",
                                                     headers: [("X-Thing", "a"), ("x-other", "b"), ("X-THING", "c")])
        #expect(text(response) == "x-thing=a;x-other=b;x-thing=c first=a q=yes")
        #expect(text(try await live.client.request("GET", "/fields")) == " first=none q=none")
        await live.stop()
    }

    @Test func unknownRoutesAndWrongMethodsGetJSONErrors() async throws {
        let live = try LiveServer(router: testRouter)
        let missing = try await live.client.request("GET", "/nope")
        #expect(missing.status == 404)
        #expect(missing.header("content-type") == "application/json")
        #expect(text(missing).hasPrefix("{\"error\":{\"code\":\"not_found\""))
        let wrongMethod = try await live.client.request("DELETE", "/echo")
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.header("allow") == "POST")
        await live.stop()
    }

    @Test func headIsAnsweredLikeGetWithoutABody() async throws {
        let live = try LiveServer(router: testRouter)
        let head = try await live.client.request("HEAD", "/hello/x")
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect(head.header("content-length") == "\("hello x q=".utf8.count)")
        await live.stop()
    }

    @Test func bodiesUpToTheLimitArriveWholeAndLargerOnesGet413() async throws {
        let live = try LiveServer(maxBodyBytes: 1000, router: testRouter)
        let payload = (0..<1000).map { UInt8($0 % 251) }
        let echoed = try await live.client.request("POST", "/echo", body: payload)
        #expect(echoed.status == 201)
        #expect(echoed.body == payload)
        let tooLarge = try await live.client.request("POST", "/echo", body: payload + [1])
        #expect(tooLarge.status == 413)
        #expect(text(tooLarge).contains("payload_too_large"))
        // The server is still fine afterwards.
        #expect(try await live.client.request("GET", "/hello/again").status == 200)
        await live.stop()
    }

    @Test func oversizedHeadersAndGarbageDoNotHurtTheServer() async throws {
        let live = try LiveServer(router: testRouter)
        let huge = String(repeating: "a", count: 100_000)
        let answer = try await live.client.raw(Array("GET /header HTTP/1.1\r\nHost: x\r\nX-Thing: \(huge)\r\n\r\n".utf8))
        #expect(String(decoding: answer.prefix(12), as: UTF8.self) == "HTTP/1.1 431")
        _ = try? await live.client.raw(Array("\u{1}\u{2}garbage\r\n\r\n".utf8))
        _ = try? await live.client.raw(Array("GET /hello/x HTTP/1.1\r\nContent-Length: -5\r\n\r\n".utf8))
        _ = try? await HTTPClient(port: live.server.port, timeoutSeconds: 1).raw([])
        #expect(try await live.client.request("GET", "/hello/still-alive").status == 200)
        await live.stop()
    }

    /// What libmicrohttpd answers by itself (it cannot parse the request, so no handler
    /// runs) is JSON too, with the status it chose, on the first request of a connection
    /// or a later one.
    @Test func theLibrarysOwnErrorAnswersAreJSON() async throws {
        let live = try LiveServer(router: testRouter)
        let long = String(repeating: "a", count: 100_000)
        let cases: [(String, String, String)] = [
            ("GET /header HTTP/1.1\r\nHost: x\r\nX-Thing: \(long)\r\n\r\n", "431", "header_too_large"),
            ("GET /\(long) HTTP/1.1\r\nHost: x\r\n\r\n", "414", "uri_too_long"),
            ("GET /hello/x HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", "400", "bad_request"),
            ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400", "bad_request"),
            ("GET /hello/x HTTP/7.0\r\nHost: x\r\n\r\n", "505", "http_version_not_supported"),
            // libmicrohttpd 0.9.75 sent its status line and headers twice for these.
            ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", "400", "bad_request"),
            ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\n", "400", "bad_request"),
            ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", "413", "payload_too_large"),
            // After a good request on the same connection.
            ("GET /hello/one HTTP/1.1\r\nHost: x\r\n\r\nGET /hello/two HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n", "400", "bad_request"),
        ]
        for (request, status, code) in cases {
            let bytes = try await live.client.raw(Array(request.utf8))
            let answer = String(decoding: bytes, as: UTF8.self)
            // One well-framed answer (two for the case after a good request), never a header block twice.
            let framed = HTTPFraming.split(bytes)
            #expect(framed?.count == (request.components(separatedBy: "Host: x").count - 1), "\(request.prefix(60)): \(answer.prefix(400))")
            #expect(framed?.last?.status == status)
            let last = answer.components(separatedBy: "HTTP/1.1 ").last ?? ""
            let head = last.components(separatedBy: "\r\n\r\n").first?.lowercased() ?? ""
            let body = last.components(separatedBy: "\r\n\r\n").dropFirst().joined()
            #expect(last.hasPrefix(status), "\(request.prefix(60)): \(answer.prefix(200))")
            #expect(head.contains("content-type: application/json"), "\(head)")
            #expect(body.hasPrefix("{\"error\":{\"code\":\"\(code)\",\"message\":\""), "\(body)")
            #expect(!body.contains("<html"), "no HTML page")
        }
        #expect(rollgate_mhd_replaced_errors() >= UInt(cases.count))
        #expect(try await live.client.request("GET", "/hello/still-alive").status == 200)
        await live.stop()
    }

    @Test func keepsTheConnectionAliveAcrossRequests() async throws {
        let live = try LiveServer(router: testRouter)
        let two = "GET /hello/one HTTP/1.1\r\nHost: x\r\n\r\nGET /hello/two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        let answer = String(decoding: try await live.client.raw(Array(two.utf8)), as: UTF8.self)
        #expect(answer.components(separatedBy: "HTTP/1.1 200").count == 3, "both answered on one connection")
        #expect(answer.contains("hello one") && answer.contains("hello two"))
        let firstHead = answer.components(separatedBy: "\r\n\r\n")[0].lowercased()
        #expect(!firstHead.contains("connection: close"))
        await live.stop()
    }

    /// A request answered on MHD's thread holds no context; one with a body or a task does.
    /// Mixed on one connection, each answer is its own request's, in order.
    @Test func oneConnectionMixesAnswersOnMHDsThreadWithBodiesAndTasks() async throws {
        let live = try LiveServer(router: testRouter)
        let requests = [
            "GET /fields?q=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n",
            "POST /echo-now HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst",
            "GET /hello/task HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond",
            "POST /echo-now HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "GET /fields HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ]
        let answer = String(decoding: try await live.client.raw(Array(requests.joined().utf8)), as: UTF8.self)
        let bodies = answer.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.components(separatedBy: "\r\n\r\n").last ?? "" }
        #expect(bodies == ["x-a=1 first=none q=1", "now:first", "hello task q=", "second", "now:", " first=none q=none"])
        #expect(try await live.client.request("GET", "/hello/after").status == 200)
        await live.stop()
    }

    @Test func manyConcurrentSlowRequestsAreServedInParallel() async throws {
        let live = try LiveServer(router: testRouter)
        let client = live.client
        // 40 requests whose handlers each wait 200 ms: handlers suspend their connection, so
        // MHD's 2 threads keep taking requests and many handlers are in flight at once.
        let answers = try await withThrowingTaskGroup(of: HTTPResponse.self) { group in
            for _ in 0..<40 { group.addTask { try await client.request("GET", "/concurrent") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.count == 40 && answers.allSatisfy { $0.status == 200 })
        #expect(concurrency.peak > 2, "more handlers in flight than MHD has threads")
        await live.stop()
    }

    @Test func stopFinishesRequestsInFlight() async throws {
        let live = try LiveServer(router: testRouter)
        let client = live.client
        let slow = Task { try await client.request("GET", "/arrive-then-sleep") }
        while arrivals.peak == 0 { await Task.yield() }   // the handler is running
        await live.stop()
        #expect(text(try await slow.value) == "finished")
        #expect(throws: HTTPClient.Failure.self) { _ = try client.send("GET", "/hello/x") }
    }

    @Test func aPortInUseIsAClearError() async throws {
        let live = try LiveServer(router: testRouter)
        let second = HTTPServer(configuration: HTTPServerConfiguration(port: live.server.port), router: testRouter)
        #expect { try second.start() } throws: { "\($0)".contains("cannot listen on 127.0.0.1:\(live.server.port)") }
        await live.stop()
    }
}
