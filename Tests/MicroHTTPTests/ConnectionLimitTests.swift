import Dispatch
import Testing
@testable import MicroHTTP
import HTTPTesting
#if canImport(Glibc)
import Glibc
#endif

/// A client that opens connections and sends nothing cannot take the server from the
/// others: one address holds at most its share, and a silent connection is closed soon.
@Suite struct ConnectionLimitTests {
    /// A TCP connection to the server from `source` (any 127.x.y.z is this host's loopback).
    func connect(from source: String, to port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        _ = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
        _ = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return fd
    }

    /// Whether the server closed the connection (EOF) within the socket's 5 s read timeout.
    func closedByServer(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    /// How many of the sockets the server closed (EOF) within the time.
    func closedWithin(_ sockets: [Int32], milliseconds: Int32) -> Int {
        var closed = Set<Int32>()
        let deadline = ContinuousClock.now + .milliseconds(Int(milliseconds))
        while ContinuousClock.now < deadline {
            var polled = sockets.filter { !closed.contains($0) }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if polled.isEmpty { break }
            guard poll(&polled, nfds_t(polled.count), 100) > 0 else { continue }
            for entry in polled where entry.revents != 0 {
                var byte: UInt8 = 0
                if recv(entry.fd, &byte, 1, Int32(MSG_DONTWAIT)) == 0 { closed.insert(entry.fd) }
            }
        }
        return closed.count
    }

    @Test func oneAddressGetsItsShareAndTheRestStillGetAnswers() async throws {
        var router = Router()
        router.get("/healthz", immediate: { _ in .json(200, Array(#"{"status":"ok"}"#.utf8)) })
        let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0, connectionTimeoutSeconds: 30, connectionsPerAddress: 4), router: router)
        try server.start()
        // Five from one address: whichever the server accepts fifth is closed at once (the
        // kernel completes all five handshakes before the server gets to them, in any order).
        let sockets = (0..<5).map { _ in connect(from: "127.0.0.2", to: server.port) }
        let answer = try await HTTPClient(port: server.port, timeoutSeconds: 5).request("GET", "/healthz")
        #expect(answer.status == 200, "another address is answered while 127.0.0.2 holds its 4")
        let closed = await offPool { closedWithin(sockets, milliseconds: 3000) }
        #expect(closed == 1, "exactly one of the five from 127.0.0.2 was closed by the server, not \(closed)")
        for fd in sockets { close(fd) }
        await server.stop(grace: .seconds(2))
    }

    @Test func aConnectionThatSendsNothingIsClosedAfterTheIdleTimeout() async throws {
        var router = Router()
        router.get("/healthz", immediate: { _ in .json(200, Array(#"{"status":"ok"}"#.utf8)) })
        let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0, connectionTimeoutSeconds: 1), router: router)
        try server.start()
        let silent = connect(from: "127.0.0.3", to: server.port)
        let start = ContinuousClock.now
        #expect(await offPool { closedByServer(silent) }, "closed by the server")
        #expect(ContinuousClock.now - start < .seconds(20), "after about the 1 s idle timeout, not never")
        close(silent)
        await server.stop(grace: .seconds(2))
    }

    /// Past `connectionLimit`, a new connection closes the one receiving longest: a flood of
    /// half-sent requests (more than the limit, each under the per-address share) cannot keep
    /// a whole request out, and the oldest of the flood are the ones closed.
    @Test func aFullServerClosesTheLongestReceivingConnectionToLetANewOneIn() async throws {
        var router = Router()
        router.get("/healthz", immediate: { _ in .json(200, Array(#"{"status":"ok"}"#.utf8)) })
        let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0, connectionTimeoutSeconds: 30, connectionLimit: 16,
                                                                       connectionsPerAddress: 8), router: router)
        try server.start()
        var flood: [Int32] = []
        for index in 0..<40 {
            let fd = connect(from: "127.0.2.\(1 + index / 8)", to: server.port)
            _ = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a".withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            flood.append(fd)
            usleep(5_000)   // in order: the first are the oldest
        }
        let answer = try await HTTPClient(port: server.port, timeoutSeconds: 5).request("GET", "/healthz")
        #expect(answer.status == 200, "a whole request is answered while the flood holds every slot")
        let oldest = Array(flood.prefix(8))
        let firstClosed = await offPool { closedWithin(oldest, milliseconds: 2000) }
        #expect(firstClosed == 8, "the oldest of the flood were closed to make room, not \(firstClosed) of 8")
        #expect(server.requestsCutAtDeadline >= 24, "\(server.requestsCutAtDeadline) cut")
        for fd in flood { close(fd) }
        await server.stop(grace: .seconds(2))
    }
}

/// Runs blocking socket work off Swift's cooperative pool.
func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: body()) }
    }
}
