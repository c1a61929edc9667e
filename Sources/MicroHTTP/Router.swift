/// An async request handler. Handlers run on the Swift concurrency pool, never on MHD's threads.
public typealias HTTPHandler = @Sendable (HTTPRequest) async -> HTTPResponse

/// Routes by method and path pattern; `{name}` segments become path parameters.
/// HEAD is routed as GET (the server drops the body). Unknown paths get 404, a known
/// path with another method 405 with `Allow`.
public struct Router: Sendable {
    struct Route: Sendable {
        let method: String
        let segments: [Segment]
        let handler: HTTPHandler
    }
    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
        case rest(String)   // `{name...}`: the remaining path, possibly empty
    }

    private var routes: [Route] = []
    /// Answers requests no route takes; default a JSON 404.
    public var fallback: HTTPHandler = { request in
        .error(404, code: "not_found", message: "no route for \(request.method) \(request.path)")
    }

    public init() {}

    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping HTTPHandler) {
        let segments = Router.split(pattern).map { part -> Segment in
            if part.hasPrefix("{") && part.hasSuffix("...}") { return .rest(String(part.dropFirst().dropLast(4))) }
            if part.hasPrefix("{") && part.hasSuffix("}") { return .parameter(String(part.dropFirst().dropLast())) }
            return .literal(part)
        }
        routes.append(Route(method: method.uppercased(), segments: segments, handler: handler))
    }

    public mutating func get(_ pattern: String, _ handler: @escaping HTTPHandler) { add("GET", pattern, handler) }
    public mutating func post(_ pattern: String, _ handler: @escaping HTTPHandler) { add("POST", pattern, handler) }

    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let method = request.method == "HEAD" ? "GET" : request.method
        let parts = Router.split(request.path)
        var allowed: [String] = []
        for route in routes {
            guard let params = Router.match(route.segments, parts) else { continue }
            if route.method != method { allowed.append(route.method); continue }
            var routed = request
            routed.parameters = params
            return await route.handler(routed)
        }
        if !allowed.isEmpty {
            var response = HTTPResponse.error(405, code: "method_not_allowed",
                                              message: "\(request.method) is not allowed on \(request.path); use \(allowed.joined(separator: ", "))")
            response.headers.append(("Allow", allowed.joined(separator: ", ")))
            return response
        }
        return await fallback(request)
    }

    static func split(_ path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    }

    static func match(_ segments: [Segment], _ parts: [String]) -> [String: String]? {
        var params: [String: String] = [:]
        for (index, segment) in segments.enumerated() {
            switch segment {
            case .rest(let name):
                params[name] = parts.dropFirst(index).joined(separator: "/")
                return params
            case .literal(let literal):
                guard index < parts.count, parts[index] == literal else { return nil }
            case .parameter(let name):
                guard index < parts.count else { return nil }
                params[name] = parts[index]
            }
        }
        return parts.count == segments.count ? params : nil
    }
}
