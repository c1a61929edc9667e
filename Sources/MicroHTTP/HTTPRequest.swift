/// One HTTP request as the server received it. Header names are lower-cased.
public struct HTTPRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [String: String]
    /// The header fields in the order received, names lower-cased; a name sent twice keeps its
    /// first value for `header(_:)`. A list, not a dictionary: a request has a handful, and
    /// building a hash table for each request cost more than the lookups save.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Path parameters filled in by the router (`/runs/{id}` gives `["id": ...]`).
    public var parameters: [String: String] = [:]
    /// The pattern of the route that took it (`/api/v1/runs/{id}`), for metrics; nil if none did.
    public var route: String?
    /// The client's IPv4 address in host byte order (0: unknown, as in tests in process).
    public var clientIPv4: UInt32 = 0
    /// The client's address as text (`127.0.0.1`), nil when unknown. Behind a reverse proxy
    /// this is the proxy's.
    public var clientAddress: String? {
        guard clientIPv4 != 0 else { return nil }
        return "\(clientIPv4 >> 24).\(clientIPv4 >> 16 & 255).\(clientIPv4 >> 8 & 255).\(clientIPv4 & 255)"
    }

    public init(method: String, path: String, query: [String: String] = [:],
                headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers.map { (name: $0.key.lowercased(), value: $0.value) }.sorted { $0.name < $1.name }
        self.body = body
    }

    /// For the server, whose header names are lower-cased as they are read.
    init(method: String, path: String, query: [String: String], lowercasedHeaders: [(name: String, value: String)], body: [UInt8]) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = lowercasedHeaders
        self.body = body
    }

    public func header(_ name: String) -> String? {
        let name = name.lowercased()
        return headers.first { $0.name == name }?.value
    }

    /// True when the client prefers HTML (a browser), judged from `Accept`.
    public var acceptsHTML: Bool { header("accept")?.contains("text/html") ?? false }
}
