#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Foundation

/// One request rollgate sends: to AWS, to instance metadata, to a notification receiver,
/// or from the CLI to a rollgate server.
public struct OutboundRequest: Sendable {
    public var method: String
    /// `https://host[:port]/path?query` or `http://...`; hosts by name, IPv4 or `[IPv6]`.
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    public var timeout: Duration

    public init(method: String, url: String, headers: [(String, String)] = [], body: [UInt8] = [], timeout: Duration = .seconds(30)) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

public struct OutboundResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String] = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// Could not get an answer: the URL, and why (refused, timed out, TLS, DNS).
public struct OutboundError: Error, CustomStringConvertible {
    public let url: String
    public let reason: String
    public init(url: String, reason: String) {
        self.url = url
        self.reason = reason
    }
    public var description: String { "\(url): \(reason)" }
}

/// The port every outbound request goes through; tests script it.
public protocol OutboundHTTP: Sendable {
    func send(_ request: OutboundRequest) async throws -> OutboundResponse
}

/// The one implementation: URLSession over libcurl. http and https, host names and IPv6,
/// per-request timeouts; proxies come from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` as libcurl
/// (and so the AWS CLI) reads them; extra CA certificates from `SSL_CERT_FILE`.
public struct URLSessionHTTP: OutboundHTTP {
    public init() {}

    public func send(_ request: OutboundRequest) async throws -> OutboundResponse {
        guard let url = URL(string: request.url), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw OutboundError(url: request.url, reason: "not an http:// or https:// URL")
        }
        let seconds = max(0.1, Double(request.timeout.components.seconds) + Double(request.timeout.components.attoseconds) / 1e18)
        var urlRequest = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: seconds)
        urlRequest.httpMethod = request.method
        for (name, value) in request.headers { urlRequest.setValue(value, forHTTPHeaderField: name) }
        if !request.body.isEmpty || request.method == "POST" { urlRequest.httpBody = Data(request.body) }
        do {
            let (data, response) = try await URLSession.shared.data(for: urlRequest)
            guard let http = response as? HTTPURLResponse else { throw OutboundError(url: request.url, reason: "not an HTTP answer") }
            var headers: [String: String] = [:]
            for (name, value) in http.allHeaderFields {
                if let name = name as? String, let value = value as? String { headers[name.lowercased()] = value }
            }
            return OutboundResponse(status: http.statusCode, headers: headers, body: [UInt8](data))
        } catch let error as OutboundError {
            throw error
        } catch {
            throw OutboundError(url: request.url, reason: error.localizedDescription)
        }
    }
}
