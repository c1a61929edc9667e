import CCurl
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The one implementation of `OutboundHTTP`: libcurl, on a thread of its own per request,
/// connections kept open per origin between requests.
/// http and https, host names and IPv6, connect and total timeouts; proxies from
/// `https_proxy`/`HTTPS_PROXY`/`http_proxy`/`no_proxy`/`NO_PROXY` as libcurl (and the AWS CLI)
/// reads them; extra trusted certificates from `caFile` (`--ca-cert`) or `SSL_CERT_FILE`.
public struct CurlHTTP: OutboundHTTP {
    public var caFile: String?
    /// Keep each origin's connection open for the next request (TCP and TLS handshakes once,
    /// not per call); off only to measure what reuse saves (`bench/aws-calls.sh`).
    public var reuseConnections = true

    public init(caFile: String? = nil, environment: [String: String] = CurlHTTP.processEnvironment, reuseConnections: Bool = true) {
        self.caFile = caFile ?? environment["SSL_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        self.reuseConnections = reuseConnections
    }

    public static var processEnvironment: [String: String] {
        var result: [String: String] = [:]
        for name in ["SSL_CERT_FILE"] {
            if let value = getenv(name) { result[name] = String(cString: value) }
        }
        return result
    }

    /// Loads libcurl now (it is otherwise loaded by the first transfer): a server whose
    /// services need AWS calls this at start, so a host without libcurl is refused there and
    /// not in the middle of a roll.
    public static func load() throws {
        guard rollgate_curl_load() == 0 else { throw CurlUnavailable(description: String(cString: rollgate_curl_load_error())) }
    }

    /// The request, on a thread of its own; cancelling the calling task ends the transfer
    /// within about a second (libcurl's progress callback), with `CancellationError`.
    public func send(_ request: OutboundRequest) async throws -> OutboundResponse {
        let caFile = self.caFile
        let pool = reuseConnections ? CurlHandles.shared : nil
        let cancel = CancelFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // A queue of its own: a blocking transfer must not hold one of Swift's few task threads.
                DispatchQueue(label: "rollgate.outbound").async {
                    continuation.resume(with: Result { try CurlHTTP.perform(request, caFile: caFile, pool: pool, cancel: cancel) })
                }
            }
        } onCancel: {
            cancel.raise()
        }
    }

    static func perform(_ request: OutboundRequest, caFile: String?, pool: CurlHandles?, cancel: CancelFlag) throws -> OutboundResponse {
        guard let origin = CurlHandles.origin(of: request.url) else {
            throw OutboundError(url: request.url, reason: "not an http:// or https:// URL")
        }
        // A header with CR, LF or NUL would add headers of its own (or end them): refused
        // before anything is sent.
        for (name, value) in request.headers where (name + value).utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) {
            throw OutboundError(url: request.url, reason: "header \(name.prefix(64)) holds a line break or NUL; nothing was sent")
        }
        if cancel.raised { throw CancellationError() }
        // libcurl is loaded (and set up, once) by the first transfer.
        guard rollgate_curl_load() == 0 else { throw OutboundError(url: request.url, reason: String(cString: rollgate_curl_load_error())) }
        guard let handle = pool?.take(origin) ?? rollgate_curl_easy_init() else {
            throw OutboundError(url: request.url, reason: "libcurl could not start a transfer")
        }
        var headers: UnsafeMutablePointer<curl_slist>?
        defer {
            // The handle goes back with its connection open, its options forgotten (the header
            // list it points to is freed below).
            rollgate_curl_easy_reset(handle)
            if pool?.give(handle, to: origin) != true { rollgate_curl_easy_cleanup(handle) }
            rollgate_curl_slist_free_all(headers)
        }
        for (name, value) in request.headers { headers = rollgate_curl_slist_append(headers, "\(name): \(value)") }
        if !request.body.isEmpty || request.method == "POST" { headers = rollgate_curl_slist_append(headers, "Expect:") }
        let received = Received(limit: request.maxResponseBytes, cancel: cancel)
        let context = Unmanaged.passUnretained(received).toOpaque()
        let milliseconds = Int(request.timeout.components.seconds * 1000 + request.timeout.components.attoseconds / 1_000_000_000_000_000)
        _ = rollgate_curl_string(handle, CURLOPT_URL, request.url)
        _ = rollgate_curl_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
        _ = rollgate_curl_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = rollgate_curl_long(handle, CURLOPT_TIMEOUT_MS, max(100, milliseconds))
        _ = rollgate_curl_long(handle, CURLOPT_CONNECTTIMEOUT_MS, min(max(100, milliseconds), 10_000))
        _ = rollgate_curl_string(handle, CURLOPT_ACCEPT_ENCODING, "")
        if let caFile { _ = rollgate_curl_string(handle, CURLOPT_CAINFO, caFile) }
        _ = rollgate_curl_headers(handle, headers)
        if request.method == "HEAD" { _ = rollgate_curl_long(handle, CURLOPT_NOBODY, 1) }
        if !request.body.isEmpty || request.method == "POST" || request.method == "PUT" {
            _ = request.body.withUnsafeBufferPointer { bytes in
                bytes.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(1, bytes.count)) {
                    rollgate_curl_body(handle, $0, bytes.count)
                }
            }
            _ = rollgate_curl_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
        }
        _ = rollgate_curl_receivers(handle, { data, size, count, context in
            let received = Unmanaged<Received>.fromOpaque(context!).takeUnretainedValue()
            guard received.body.count + size * count <= received.limit else {
                received.overflowed = true
                return 0   // libcurl ends the transfer (CURLE_WRITE_ERROR)
            }
            received.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }, { data, size, count, context in
            let received = Unmanaged<Received>.fromOpaque(context!).takeUnretainedValue()
            received.header(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }, context)
        _ = rollgate_curl_progress(handle, { context, _, _, _, _ in
            Unmanaged<Received>.fromOpaque(context!).takeUnretainedValue().cancel.raised ? 1 : 0
        }, context)
        let code = withExtendedLifetime(received) { rollgate_curl_easy_perform(handle) }
        if cancel.raised { throw CancellationError() }
        if received.overflowed {
            throw OutboundError(url: request.url, reason: "the answer's body is larger than \(request.maxResponseBytes) bytes; it was not read")
        }
        guard code == CURLE_OK else {
            throw OutboundError(url: request.url, reason: String(cString: rollgate_curl_easy_strerror(code)))
        }
        return OutboundResponse(status: rollgate_curl_status(handle), headers: received.headers, body: received.body)
    }
}

/// libcurl is missing or unusable on this host.
public struct CurlUnavailable: Error, CustomStringConvertible {
    public let description: String
}

/// Set once when the task that sent a request is cancelled; read by the transfer's thread.
final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func raise() { flag.store(true, ordering: .releasing) }
    var raised: Bool { flag.load(ordering: .acquiring) }
}

/// Idle libcurl handles by origin (`scheme://host:port`). A handle keeps its connections and
/// TLS sessions across `curl_easy_reset`, so the next request to that origin skips the
/// handshakes. A handle is used by one transfer at a time: taken out, given back after.
/// Bounded: a few idle handles per origin and a few dozen origins; past that a handle is
/// cleaned up (its connection closed) instead of kept.
final class CurlHandles: Sendable {
    static let shared = CurlHandles()
    static let perOrigin = 4
    static let origins = 32

    /// @unchecked: a handle in the pool belongs to no transfer; the lock hands it to one.
    private struct Handle: @unchecked Sendable { let pointer: UnsafeMutableRawPointer }
    private let idle = Mutex<[String: [Handle]]>([:])

    func take(_ origin: String) -> UnsafeMutableRawPointer? {
        idle.withLock { idle in idle[origin]?.popLast()?.pointer }
    }

    /// False when the pool is full: the caller cleans the handle up.
    func give(_ handle: UnsafeMutableRawPointer, to origin: String) -> Bool {
        idle.withLock { idle in
            if idle[origin] == nil {
                idle = idle.filter { !$0.value.isEmpty }
                guard idle.count < CurlHandles.origins else { return false }
            }
            guard idle[origin, default: []].count < CurlHandles.perOrigin else { return false }
            idle[origin, default: []].append(Handle(pointer: handle))
            return true
        }
    }

    /// `scheme://authority` of an http(s) URL, lower-cased; nil for anything else.
    static func origin(of url: String) -> String? {
        let lower = url.lowercased()
        let scheme: String
        if lower.hasPrefix("http://") { scheme = "http://" } else if lower.hasPrefix("https://") { scheme = "https://" } else { return nil }
        let rest = lower.dropFirst(scheme.count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        return authority.isEmpty ? nil : scheme + authority
    }
}

/// What one transfer received; touched only by libcurl's callbacks on the transfer's thread.
private final class Received {
    let limit: Int
    let cancel: CancelFlag
    var overflowed = false
    init(limit: Int, cancel: CancelFlag) {
        self.limit = limit
        self.cancel = cancel
    }
    var body: [UInt8] = []
    var headers: [String: String] = [:]

    func header(_ line: UnsafeRawBufferPointer) {
        let text = String(decoding: line, as: UTF8.self)
        if text.hasPrefix("HTTP/") { headers = [:]; return }   // a new answer (after 100 Continue or a redirect)
        guard let colon = text.firstIndex(of: ":") else { return }
        let name = text[..<colon].lowercased()
        let value = text[text.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
        headers[name] = String(value.reversed().drop { $0 == "\r" || $0 == "\n" || $0 == " " }.reversed())
    }
}
