
/// One request rollgate sends: to AWS, to instance metadata, to a notification receiver,
/// or from the CLI to a rollgate server.
public struct OutboundRequest: Sendable {
    public var method: String
    /// `https://host[:port]/path?query` or `http://...`; hosts by name, IPv4 or `[IPv6]`.
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    public var timeout: Duration
    /// An answer's body past this ends the transfer with an error (a receiver cannot make
    /// rollgate hold an endless answer). AWS's lists are large; a notification's answer is not.
    public var maxResponseBytes: Int

    public init(method: String, url: String, headers: [(String, String)] = [], body: [UInt8] = [], timeout: Duration = .seconds(30),
                maxResponseBytes: Int = 16 << 20) {
        self.maxResponseBytes = maxResponseBytes
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
