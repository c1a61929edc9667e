/// One HTTP request as the server received it. Header names are lower-cased.
public struct HTTPRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [String: String]
    public var headers: [String: String]
    public var body: [UInt8]
    /// Path parameters filled in by the router (`/runs/{id}` gives `["id": ...]`).
    public var parameters: [String: String] = [:]
    /// The pattern of the route that took it (`/api/v1/runs/{id}`), for metrics; nil if none did.
    public var route: String?

    public init(method: String, path: String, query: [String: String] = [:],
                headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        self.body = body
    }

    /// For the server, whose header names are lower-cased as they are read.
    init(method: String, path: String, query: [String: String], lowercasedHeaders: [String: String], body: [UInt8]) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = lowercasedHeaders
        self.body = body
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// True when the client prefers HTML (a browser), judged from `Accept`.
    public var acceptsHTML: Bool { header("accept")?.contains("text/html") ?? false }
}
