#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Outbound

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

/// AWS requests through the one outbound client.
public struct OutboundTransport: AWSTransport {
    let http: any OutboundHTTP

    public init(http: any OutboundHTTP) { self.http = http }

    public func post(_ endpoint: AWSEndpoint, headers: [(String, String)], body: [UInt8], timeout: Duration) async throws -> (status: Int, body: [UInt8]) {
        do {
            let response = try await http.send(OutboundRequest(method: "POST", url: endpoint.description, headers: headers, body: body,
                                                               timeout: timeout > .zero ? timeout : .seconds(10)))
            return (response.status, response.body)
        } catch is CancellationError {
            throw CancellationError()   // shutdown: not a connection error to retry
        } catch {
            throw TransportError(description: "\(error)")
        }
    }
}
