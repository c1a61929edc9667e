#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Foundation

/// Where requests go: `https://elasticloadbalancing.REGION.amazonaws.com/`, or an override
/// such as moto's `http://127.0.0.1:PORT`.
public struct AWSEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int?
    public var path: String

    public init(scheme: String = "https", host: String, port: Int? = nil, path: String = "/") {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
    }

    /// Parses `http://127.0.0.1:4566` or `https://host/path`.
    public init?(url: String) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty else { return nil }
        self.init(scheme: scheme, host: host.lowercased(), port: components.port,
                  path: components.path.isEmpty ? "/" : components.path)
    }

    public static func elbv2(region: String) -> AWSEndpoint {
        AWSEndpoint(host: "elasticloadbalancing.\(region).amazonaws.com")
    }

    /// The Host header SigV4 signs: `:port` only when it is not the scheme's default.
    public var hostHeader: String {
        guard let port, !(scheme == "https" && port == 443), !(scheme == "http" && port == 80) else { return host }
        return "\(host):\(port)"
    }

    public var description: String { "\(scheme)://\(hostHeader)\(path)" }
}

public struct TransportError: Error, CustomStringConvertible {
    public let description: String
}

/// Sends one POST and returns status and body. Connection failures throw `TransportError`.
public protocol AWSTransport: Sendable {
    func post(_ endpoint: AWSEndpoint, headers: [(String, String)], body: [UInt8], timeout: Duration) async throws -> (status: Int, body: [UInt8])
}

/// URLSession (libcurl underneath): http and https.
public struct URLSessionTransport: AWSTransport {
    public init() {}

    public func post(_ endpoint: AWSEndpoint, headers: [(String, String)], body: [UInt8], timeout: Duration) async throws -> (status: Int, body: [UInt8]) {
        guard let url = URL(string: endpoint.description) else { throw TransportError(description: "bad endpoint \(endpoint)") }
        var request = URLRequest(url: url, timeoutInterval: timeout.components.seconds > 0 ? Double(timeout.components.seconds) : 10)
        request.httpMethod = "POST"
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = Data(body)
        do {
            let (data, response) = try await URLSession.shared.data(for: request)
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            return (status, [UInt8](data))
        } catch {
            throw TransportError(description: "\(endpoint): \(error.localizedDescription)")
        }
    }
}
