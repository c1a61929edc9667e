/// An async request handler: runs in a task while its connection is suspended.
public typealias HTTPHandler = @Sendable (HTTPRequest) async -> HTTPResponse
/// A handler that answers at once without waiting on anything (a point read, a file):
/// it runs on MHD's thread and saves the suspend/resume round trip.
public typealias HTTPImmediateHandler = @Sendable (HTTPRequest) -> HTTPResponse

/// What the router made of a request: an answer now, or a handler to await.
public enum HTTPRouting: Sendable {
    case answer(HTTPResponse)
    case await(HTTPHandler, HTTPRequest)
}

/// Routes by method and path pattern; `{name}` segments become path parameters.
/// HEAD is routed as GET (the server drops the body). Unknown paths get 404, a known
/// path with another method 405 with `Allow`.
public struct Router: Sendable {
    enum Handler: Sendable {
        case immediate(HTTPImmediateHandler)
        case async(HTTPHandler)
    }
    struct Route: Sendable {
        let method: String
        let pattern: String
        let segments: [Segment]
        let handler: Handler
    }
    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
        case rest(String)   // `{name...}`: the remaining path, possibly empty
    }

    private var routes: [Route] = []
    /// Indexes into `routes` by a path's segment count (routes ending in `{name...}` are in
    /// every count from their fixed part up): a request only tries routes that could match.
    private var bySegmentCount: [[Int]] = Array(repeating: [], count: Router.indexedSegments + 1)
    /// Routes that can match a path longer than any count indexed (`{name...}` ones, and any
    /// with more fixed segments than that).
    private var longRoutes: [Int] = []
    private static let indexedSegments = 12
    /// Every route as `METHOD /pattern`, in the order they were added (to check documentation against).
    public private(set) var patterns: [String] = []
    /// Answers requests no route takes; default a JSON 404.
    public var fallback: HTTPImmediateHandler = { request in
        .error(404, code: "not_found", message: "no route for \(request.method) \(request.path)")
    }

    public init() {}

    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping HTTPHandler) {
        add(method, pattern, .async(handler))
    }

    /// A route answered on MHD's thread: only for work that never waits.
    public mutating func add(_ method: String, _ pattern: String, immediate handler: @escaping HTTPImmediateHandler) {
        add(method, pattern, .immediate(handler))
    }

    mutating func add(_ method: String, _ pattern: String, _ handler: Handler) {
        let segments = Router.split(pattern).map { part -> Segment in
            if part.hasPrefix("{") && part.hasSuffix("...}") { return .rest(String(part.dropFirst().dropLast(4))) }
            if part.hasPrefix("{") && part.hasSuffix("}") { return .parameter(String(part.dropFirst().dropLast())) }
            return .literal(part)
        }
        routes.append(Route(method: method.uppercased(), pattern: pattern, segments: segments, handler: handler))
        let index = routes.count - 1
        let isRest = if case .rest = segments.last { true } else { false }
        let fewest = isRest ? segments.count - 1 : segments.count
        if isRest || fewest > Router.indexedSegments { longRoutes.append(index) }
        for count in bySegmentCount.indices where count == fewest || (isRest && count > fewest) {
            bySegmentCount[count].append(index)
        }
        patterns.append("\(method.uppercased()) \(pattern)")
    }

    public mutating func get(_ pattern: String, _ handler: @escaping HTTPHandler) { add("GET", pattern, handler) }
    public mutating func post(_ pattern: String, _ handler: @escaping HTTPHandler) { add("POST", pattern, handler) }
    public mutating func get(_ pattern: String, immediate handler: @escaping HTTPImmediateHandler) { add("GET", pattern, immediate: handler) }
    public mutating func post(_ pattern: String, immediate handler: @escaping HTTPImmediateHandler) { add("POST", pattern, immediate: handler) }
    public mutating func delete(_ pattern: String, immediate handler: @escaping HTTPImmediateHandler) { add("DELETE", pattern, immediate: handler) }
    public mutating func delete(_ pattern: String, _ handler: @escaping HTTPHandler) { add("DELETE", pattern, handler) }

    /// Finds the route: immediate handlers (and 404/405) answer here and now.
    public func route(_ request: HTTPRequest) -> HTTPRouting {
        let method = request.method == "HEAD" ? "GET" : request.method
        let parts = Router.split(request.path)
        var allowed: [String] = []
        let candidates = parts.count <= Router.indexedSegments ? bySegmentCount[parts.count] : longRoutes
        for index in candidates {
            let route = routes[index]
            guard let params = Router.match(route.segments, parts) else { continue }
            if route.method != method { allowed.append(route.method); continue }
            var routed = request
            routed.parameters = params
            routed.route = route.pattern
            switch route.handler {
            case .immediate(let handler): return .answer(handler(routed))
            case .async(let handler): return .await(handler, routed)
            }
        }
        if !allowed.isEmpty {
            var response = HTTPResponse.error(405, code: "method_not_allowed",
                                              message: "\(request.method) is not allowed on \(request.path); use \(allowed.joined(separator: ", "))")
            response.headers.append(("Allow", allowed.joined(separator: ", ")))
            return .answer(response)
        }
        return .answer(fallback(request))
    }

    /// Routes and answers, awaiting the handler if it is async.
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        switch route(request) {
        case .answer(let response): return response
        case .await(let handler, let routed): return await handler(routed)
        }
    }

    /// Splits on the `/` byte, not on characters: a combining mark or an emoji modifier after
    /// a slash (`/runs/%F0%9F%8F%BB`) would otherwise fuse with it into one character.
    static func split(_ path: String) -> [String] {
        var parts: [String] = []
        var path = path
        path.withUTF8 { utf8 in
            var start = 0
            for end in 0...utf8.count where end == utf8.count || utf8[end] == UInt8(ascii: "/") {
                if end > start { parts.append(String(decoding: UnsafeBufferPointer(rebasing: utf8[start..<end]), as: UTF8.self)) }
                start = end + 1
            }
        }
        return parts
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
