import CCurl
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// The one implementation of `OutboundHTTP`: libcurl, on a thread of its own per request.
/// http and https, host names and IPv6, connect and total timeouts; proxies from
/// `https_proxy`/`HTTPS_PROXY`/`http_proxy`/`no_proxy`/`NO_PROXY` as libcurl (and the AWS CLI)
/// reads them; extra trusted certificates from `caFile` (`--ca-cert`) or `SSL_CERT_FILE`.
public struct CurlHTTP: OutboundHTTP {
    public var caFile: String?

    public init(caFile: String? = nil, environment: [String: String] = CurlHTTP.processEnvironment) {
        self.caFile = caFile ?? environment["SSL_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public static var processEnvironment: [String: String] {
        var result: [String: String] = [:]
        for name in ["SSL_CERT_FILE"] {
            if let value = getenv(name) { result[name] = String(cString: value) }
        }
        return result
    }

    public func send(_ request: OutboundRequest) async throws -> OutboundResponse {
        let caFile = self.caFile
        return try await withCheckedThrowingContinuation { continuation in
            // A queue of its own: a blocking transfer must not hold one of Swift's few task threads.
            DispatchQueue(label: "rollgate.outbound").async {
                continuation.resume(with: Result { try CurlHTTP.perform(request, caFile: caFile) })
            }
        }
    }

    static func perform(_ request: OutboundRequest, caFile: String?) throws -> OutboundResponse {
        guard request.url.hasPrefix("http://") || request.url.hasPrefix("https://") else {
            throw OutboundError(url: request.url, reason: "not an http:// or https:// URL")
        }
        // A header with CR, LF or NUL would add headers of its own (or end them): refused
        // before anything is sent.
        for (name, value) in request.headers where (name + value).utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) {
            throw OutboundError(url: request.url, reason: "header \(name.prefix(64)) holds a line break or NUL; nothing was sent")
        }
        // libcurl is loaded (and set up, once) by the first transfer.
        guard rollgate_curl_load() == 0 else { throw OutboundError(url: request.url, reason: String(cString: rollgate_curl_load_error())) }
        guard let handle = rollgate_curl_easy_init() else { throw OutboundError(url: request.url, reason: "libcurl could not start a transfer") }
        defer { rollgate_curl_easy_cleanup(handle) }
        var headers: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.headers { headers = rollgate_curl_slist_append(headers, "\(name): \(value)") }
        if !request.body.isEmpty || request.method == "POST" { headers = rollgate_curl_slist_append(headers, "Expect:") }
        defer { rollgate_curl_slist_free_all(headers) }
        let received = Received(limit: request.maxResponseBytes)
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
        let code = rollgate_curl_easy_perform(handle)
        if received.overflowed {
            throw OutboundError(url: request.url, reason: "the answer's body is larger than \(request.maxResponseBytes) bytes; it was not read")
        }
        guard code == CURLE_OK else {
            throw OutboundError(url: request.url, reason: String(cString: rollgate_curl_easy_strerror(code)))
        }
        return OutboundResponse(status: rollgate_curl_status(handle), headers: received.headers, body: received.body)
    }
}

/// What one transfer received; touched only by libcurl's callbacks on the transfer's thread.
private final class Received {
    let limit: Int
    var overflowed = false
    init(limit: Int) { self.limit = limit }
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
