import MicroHTTP
#if canImport(Glibc)
import Glibc
#endif

/// The tests' raw client: blocking HTTP/1.1 over plain `http://` on IPv4, which can also send
/// bytes no proper client would (garbage, huge headers, deep JSON). One request a connection.
/// rollgate itself sends every request through `Outbound`.
public struct HTTPClient: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let host: String
    public let port: UInt16
    public var timeoutSeconds: Int
    /// The loopback address to send from (`127.0.0.7`), to be another client; nil: the kernel's choice.
    public var source: String?

    /// `base` like `http://127.0.0.1:8080`.
    public init(base: String, timeoutSeconds: Int = 30) throws {
        var rest = Substring(base)
        guard rest.hasPrefix("http://") else {
            throw Failure(description: "server URL must start with http:// (got \(base))")
        }
        rest = rest.dropFirst("http://".count)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        let parts = rest.split(separator: ":", maxSplits: 1)
        guard let hostPart = parts.first, !hostPart.isEmpty else { throw Failure(description: "no host in \(base)") }
        let port = parts.count == 2 ? UInt16(parts[1]) : 80
        guard let port else { throw Failure(description: "bad port in \(base)") }
        self.host = hostPart == "localhost" ? "127.0.0.1" : String(hostPart)
        self.port = port
        self.timeoutSeconds = timeoutSeconds
    }

    public init(host: String = "127.0.0.1", port: UInt16, timeoutSeconds: Int = 30) {
        self.host = host
        self.port = port
        self.timeoutSeconds = timeoutSeconds
    }

    public func send(_ method: String, _ path: String, headers: [(String, String)] = [],
                     body: [UInt8] = []) throws -> HTTPResponse {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" || method == "PUT" { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        let raw = try exchange(Array(head.utf8) + body)
        return try HTTPClient.parse(raw, method: method)
    }

    /// Sends bytes as they are and returns everything the server wrote until it closed.
    public func exchange(_ request: [UInt8]) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            guard inet_pton(AF_INET, source, &local.sin_addr) == 1 else { throw Failure(description: "not an IPv4 address: \(source)") }
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw Failure(description: "cannot send from \(source): \(String(cString: strerror(errno)))") }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw Failure(description: "not an IPv4 address: \(host)")
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            throw Failure(description: "cannot connect to \(host):\(port): \(String(cString: strerror(errno)))")
        }
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { write(fd, $0.baseAddress! + sent, request.count - sent) }
            if n <= 0 { break }   // the server may answer (413) before reading everything
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if received.isEmpty { throw Failure(description: "no answer from \(host):\(port): \(String(cString: strerror(errno)))") }
                break
            }
            if n == 0 { break }
            received.append(contentsOf: buffer[0..<n])
        }
        return received
    }

    public static func parse(_ raw: [UInt8], method: String) throws -> HTTPResponse {
        guard let split = raw.firstRange(of: [13, 10, 13, 10]) else {
            throw Failure(description: "malformed HTTP answer (\(raw.count) bytes)")
        }
        let headText = String(decoding: raw[..<split.lowerBound], as: UTF8.self)
        var lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw Failure(description: "malformed status line")
        }
        var headers: [(String, String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].drop(while: { $0 == " " })
            headers.append((name, String(value)))
        }
        var body = Array(raw[split.upperBound...])
        let response = HTTPResponse(status: status, headers: headers, body: [])
        if response.header("transfer-encoding")?.lowercased() == "chunked" {
            body = dechunk(body)
        } else if let length = response.header("content-length").flatMap(Int.init), length < body.count {
            body = Array(body[..<length])
        }
        if method == "HEAD" { body = [] }
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = bytes[index...].firstRange(of: [13, 10]) else { break }
            let sizeText = String(decoding: bytes[index..<lineEnd.lowerBound], as: UTF8.self)
            guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16), size > 0 else { break }
            let start = lineEnd.upperBound
            let end = min(start + size, bytes.count)
            out.append(contentsOf: bytes[start..<end])
            index = end + 2
        }
        return out
    }
}

import Dispatch

extension HTTPClient {
    /// `send` on a thread of its own, so a blocking socket never holds a Swift concurrency
    /// thread. (A serial queue of its own, not `DispatchQueue.global()`: on Linux the global
    /// queues are as wide as the CPUs and also run Swift's tasks, so blocking them starves both.)
    public func request(_ method: String, _ path: String, headers: [(String, String)] = [],
                        body: [UInt8] = []) async throws -> HTTPResponse {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue(label: "rollgate.http-client").async {
                continuation.resume(with: Result { try self.send(method, path, headers: headers, body: body) })
            }
        }
    }

    /// `exchange` on a thread of its own.
    public func raw(_ bytes: [UInt8]) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue(label: "rollgate.http-client").async {
                continuation.resume(with: Result { try self.exchange(bytes) })
            }
        }
    }
}
