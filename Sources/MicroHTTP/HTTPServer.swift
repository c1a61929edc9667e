import CMicroHTTPD
import CMicroHTTPDErrors
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct HTTPServerConfiguration: Sendable {
    public var host: String
    public var port: UInt16
    public var threads: UInt32
    /// Bodies past this get 413 (after MHD has read them, so the connection stays usable).
    public var maxBodyBytes: Int
    /// Per-connection memory for headers and buffers; larger request headers get 431.
    public var connectionMemoryLimit: Int
    /// A connection that sends nothing for this long is closed (a client that opens a
    /// connection and never finishes its request holds a slot only this long). Suspended
    /// connections (live streams) are not timed out; they send a heartbeat every 15 s.
    public var connectionTimeoutSeconds: UInt32
    /// Connections open at once, in all; past it each new one closes the connection that has
    /// been receiving its request longest (a reserve above it lets the new one in), and past
    /// the reserve too new ones are closed at once.
    public var connectionLimit: UInt32
    /// Connections open at once from one address: one client cannot take the others' slots.
    public var connectionsPerAddress: UInt32
    /// A request's line, headers and body must all arrive within this, however they trickle
    /// in; past it the connection is closed.
    public var requestTimeoutSeconds: UInt32
    /// PEM text of the private key and certificate chain: HTTPS when given.
    public var tls: (key: String, certificate: String)?

    public init(host: String = "127.0.0.1", port: UInt16 = 0, threads: UInt32 = 2,
                maxBodyBytes: Int = 1 << 20, connectionMemoryLimit: Int = 32 << 10,
                connectionTimeoutSeconds: UInt32 = 10, connectionLimit: UInt32 = 4096, connectionsPerAddress: UInt32 = 128,
                requestTimeoutSeconds: UInt32 = 30, tls: (key: String, certificate: String)? = nil) {
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.connectionLimit = connectionLimit
        self.connectionsPerAddress = connectionsPerAddress
        self.tls = tls
        self.host = host
        self.port = port
        self.threads = threads
        self.maxBodyBytes = maxBodyBytes
        self.connectionMemoryLimit = connectionMemoryLimit
        self.connectionTimeoutSeconds = connectionTimeoutSeconds
    }
}

public struct HTTPServerError: Error, CustomStringConvertible {
    public let description: String
}

/// An HTTP/1.1 server over libmicrohttpd. MHD's threads only parse and queue: every
/// handler runs in a Task while its connection is suspended, and resumes it when done.
public final class HTTPServer: @unchecked Sendable {
    // @unchecked: `daemon` is written in start()/stop() only, before and after MHD's threads run.
    public let configuration: HTTPServerConfiguration
    let router: @Sendable (HTTPRequest) -> HTTPRouting
    private var daemon: OpaquePointer?
    /// Requests handed to a handler and not yet completed by MHD, and whether stop() began.
    /// Checked and changed under one lock, so no connection is suspended once stopping.
    private let dispatch = Mutex<(open: Int, stopping: Bool)>((0, false))
    /// Streams being sent: finished at stop, so no connection stays suspended.
    private let streams = Mutex<[Weak<HTTPStream>]>([])

    /// Streams still open (for /metrics and tests).
    public var openStreams: Int { streams.withLock { $0.filter { $0.value.map { !$0.isClosed } ?? false }.count } }
    public private(set) var port: UInt16 = 0
    let deadlines: RequestDeadlines
    /// Requests closed because they did not arrive within the request deadline.
    public var requestsCutAtDeadline: Int { deadlines.cut.load(ordering: .relaxed) }

    /// Every request goes to `handler`, in a task.
    public init(configuration: HTTPServerConfiguration = .init(), handler: @escaping HTTPHandler) {
        self.configuration = configuration
        self.router = { .await(handler, $0) }
        deadlines = RequestDeadlines(limitSeconds: configuration.requestTimeoutSeconds, capacity: Int(configuration.connectionLimit))
    }

    /// Immediate routes answer on MHD's thread; the others in a task.
    public init(configuration: HTTPServerConfiguration = .init(), router: Router) {
        self.configuration = configuration
        self.router = { router.route($0) }
        deadlines = RequestDeadlines(limitSeconds: configuration.requestTimeoutSeconds, capacity: Int(configuration.connectionLimit))
    }

    public func start() throws {
        let host = configuration.host == "localhost" ? "127.0.0.1" : configuration.host
        let me = Unmanaged.passUnretained(self).toOpaque()
        daemon = rollgate_mhd_start(host, configuration.port, accessHandler, me,
                                    completedHandler, me, configuration.threads,
                                    configuration.connectionMemoryLimit,
                                    configuration.connectionTimeoutSeconds,
                                    configuration.connectionLimit + RequestDeadlines.reserve(for: configuration.connectionLimit),
                                    configuration.connectionsPerAddress,
                                    connectionNotified, me,
                                    configuration.tls?.key, configuration.tls?.certificate)
        guard let daemon else {
            throw HTTPServerError(description: "cannot listen on \(host):\(configuration.port) (address in use, not an IPv4 address"
                                  + (configuration.tls == nil ? "?)" : ", or a TLS key and certificate that do not go together?)"))
        }
        port = rollgate_mhd_bound_port(daemon)
        deadlines.start()
    }

    /// Lets requests in flight finish (saying so if that takes longer than `grace`), answers
    /// 503 to new requests that would have to wait, then stops MHD (which closes the listener).
    /// MHD_quiesce_daemon is not used: with an epoll thread pool it races its own workers over
    /// the listen socket and aborts the process ("Failed to remove listen FD from epoll set",
    /// an open libmicrohttpd defect; seen here when the socket was closed right after it).
    public func stop(grace: Duration = .seconds(10)) async {
        guard let daemon else { return }
        dispatch.withLock { $0.stopping = true }
        // Every suspended connection must be resumed and answered before MHD_stop_daemon
        // (MHD aborts otherwise), so this waits for every handler to return.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: grace)
        var warned = false
        while dispatch.withLock({ $0.open }) > 0 {
            if clock.now >= deadline && !warned {
                warned = true
                print("rollgate: still waiting for \(dispatch.withLock { $0.open }) request(s) in flight")
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        // Streams end (their connections resume), then MHD may stop.
        let open = streams.withLock { $0.compactMap(\.value) }
        for stream in open { stream.finish() }
        let streamDeadline = clock.now.advanced(by: .seconds(2))
        while open.contains(where: { !$0.isClosed }) && clock.now < streamDeadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        MHD_stop_daemon(daemon)
        deadlines.stop()
        self.daemon = nil
    }

    // MARK: - Called on MHD's threads

    func access(_ connection: OpaquePointer, url: String, method: String,
                upload: UnsafePointer<CChar>?, uploadSize: UnsafeMutablePointer<Int>,
                state: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> MHD_Result {
        // The first call (headers only) was answered by `accessHandler`; a context is made
        // only when the request needs one: a body arrives, or its handler runs in a task.
        let context = RequestContext.existing(state)
        if uploadSize.pointee > 0 {
            let context = context ?? RequestContext.adopt(state)
            let count = uploadSize.pointee
            if !context.tooLarge, let upload {
                if context.body.count + count > configuration.maxBodyBytes {
                    context.tooLarge = true
                    context.body = []
                } else {
                    upload.withMemoryRebound(to: UInt8.self, capacity: count) {
                        context.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: count))
                    }
                }
            }
            uploadSize.pointee = 0
            return rollgate_mhd_yes()
        }
        RequestDeadlines.clock(of: connection)?.received()
        if let response = context?.response {
            return queue(connection, response)
        }
        if context?.tooLarge == true {
            return queue(connection, .error(413, code: "payload_too_large",
                                            message: "request body is larger than \(configuration.maxBodyBytes) bytes"))
        }
        if context?.dispatched == true { return rollgate_mhd_yes() }

        var request = HTTPRequest(method: method, path: url,
                                  query: queryValues(connection),
                                  lowercasedHeaders: headerFields(connection),
                                  body: context?.body ?? [])
        request.clientIPv4 = rollgate_mhd_client_ipv4(connection)
        let (handler, routed): (HTTPHandler, HTTPRequest)
        switch router(request) {
        case .answer(let response):
            return queue(connection, response)
        case .await(let asyncHandler, let asyncRequest):
            (handler, routed) = (asyncHandler, asyncRequest)
        }
        let accepted = dispatch.withLock { state -> Bool in
            guard !state.stopping else { return false }
            state.open += 1
            return true
        }
        guard accepted else {
            var response = HTTPResponse.error(503, code: "shutting_down", message: "the server is stopping")
            response.headers.append(("Connection", "close"))
            return queue(connection, response)
        }
        let held = context ?? RequestContext.adopt(state)
        held.dispatched = true
        MHD_suspend_connection(connection)
        let suspended = SuspendedConnection(pointer: connection)
        Task {
            held.response = await handler(routed)
            MHD_resume_connection(suspended.pointer)
        }
        return rollgate_mhd_yes()
    }

    private func queue(_ connection: OpaquePointer, _ response: HTTPResponse) -> MHD_Result {
        if let constant = response.constant, response.stream == nil {
            guard let made = constant.made({ build(response, for: connection) }) else { return rollgate_mhd_no() }
            return rollgate_mhd_queue(connection, UInt32(response.status), made)
        }
        guard let mhdResponse = build(response, for: connection) else { return rollgate_mhd_no() }
        let result = rollgate_mhd_queue(connection, UInt32(response.status), mhdResponse)
        MHD_destroy_response(mhdResponse)
        return result
    }

    /// libmicrohttpd's response for an answer: its body copied (or its stream attached) and
    /// its headers added.
    private func build(_ response: HTTPResponse, for connection: OpaquePointer) -> OpaquePointer? {
        let body = response.body
        let mhdResponse: OpaquePointer?
        if let stream = response.stream {
            stream.attach(connection)
            streams.withLock { $0.append(Weak(stream)); $0.removeAll { $0.value == nil } }
            // MHD holds the stream until its free callback, which balances this retain.
            let cls = Unmanaged.passRetained(stream).toOpaque()
            mhdResponse = rollgate_mhd_stream_response(streamReader, cls, streamReleased)
            if mhdResponse == nil { Unmanaged<HTTPStream>.fromOpaque(cls).release() }
        } else if body.isEmpty {
            mhdResponse = MHD_create_response_from_buffer(0, nil, .RESPMEM_PERSISTENT)
        } else {
            // MHD sends from the body's own storage, kept alive by a retained box until MHD
            // frees the response (no copy of the body per answer).
            let box = Unmanaged.passRetained(BodyBox(body))
            let start = box.takeUnretainedValue().bytes.withUnsafeBytes { UnsafeMutableRawPointer(mutating: $0.baseAddress!) }
            mhdResponse = MHD_create_response_from_buffer_with_free_callback_cls(body.count, start, bodyReleased, box.toOpaque())
            if mhdResponse == nil { box.release() }
        }
        guard let mhdResponse else { return nil }
        for (name, value) in response.headers {
            // MHD refuses header values with CR/LF; such a header is dropped rather than sent.
            _ = MHD_add_response_header(mhdResponse, name, value)
        }
        return mhdResponse
    }

    func requestCompleted() {
        dispatch.withLock { $0.open -= 1 }
    }

    fileprivate func connection(_ connection: OpaquePointer, _ code: MHD_ConnectionNotificationCode,
                                _ context: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) {
        switch code {
        case .CONNECTION_NOTIFY_STARTED:
            let clock = deadlines.opened(connection, socket: rollgate_mhd_connection_fd(connection))
            // The deadlines hold the clock until MHD says the connection closed.
            context?.pointee = Unmanaged.passUnretained(clock).toOpaque()
        case .CONNECTION_NOTIFY_CLOSED:
            context?.pointee = nil
            deadlines.closed(connection)
        default: break
        }
    }

    /// The query's arguments (a name given twice keeps its first value).
    private func queryValues(_ connection: OpaquePointer) -> [String: String] {
        // Without an iterator MHD only counts: most requests have no query string.
        guard MHD_get_connection_values(connection, .GET_ARGUMENT_KIND, nil, nil) > 0 else { return [:] }
        var fields: [(name: String, value: String)] = []
        withUnsafeMutablePointer(to: &fields) { _ = MHD_get_connection_values_n(connection, .GET_ARGUMENT_KIND, fieldCollector, $0) }
        var values: [String: String] = [:]
        for field in fields where values[field.name] == nil { values[field.name] = field.value }
        return values
    }

    /// The header fields, names lower-cased, in the order received.
    private func headerFields(_ connection: OpaquePointer) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(8)
        withUnsafeMutablePointer(to: &fields) { _ = MHD_get_connection_values_n(connection, .HEADER_KIND, fieldCollector, $0) }
        return fields
    }
}

/// Appends each key and value MHD gives to the `[(name, value)]` its closure argument points to,
/// the name lower-cased (header names are case-insensitive; the API's query names are all
/// lower case, so `?Limit=5` works as `?limit=5`, as it always has). Values are taken with
/// the length MHD gives: a query argument keeps a NUL (`%00`, then refused as a control
/// character); a header value cannot, as libmicrohttpd 0.9.75 keeps header lines as C strings
/// and ends the value at a NUL before rollgate sees it.
private let fieldCollector: MHD_KeyValueIteratorN = { cls, _, key, keySize, value, valueSize in
    guard let cls, let key else { return rollgate_mhd_yes() }
    let fields = cls.assumingMemoryBound(to: [(name: String, value: String)].self)
    var name = String(decoding: UnsafeRawBufferPointer(start: key, count: keySize), as: UTF8.self)
    if name.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) { name = name.lowercased() }
    let text = value.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: valueSize), as: UTF8.self) } ?? ""
    fields.pointee.append((name: name, value: text))
    return rollgate_mhd_yes()
}

/// A response body held for MHD, which sends straight from the array's storage: the box is
/// retained while MHD holds the response and never changes the array, so the storage stays put.
final class BodyBox {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
}

private let bodyReleased: MHD_ContentReaderFreeCallback = { cls in
    guard let cls else { return }
    Unmanaged<BodyBox>.fromOpaque(cls).release()
}

/// Per-request state held in MHD's `con_cls` until completion, made only for a request that
/// sends a body or is handed to a task; a request answered on MHD's thread without a body
/// holds `RequestContext.started` there instead (no allocation).
/// @unchecked: MHD touches it only on the connection's thread; the handler task writes
/// `response` while the connection is suspended, and resuming publishes it.
final class RequestContext: @unchecked Sendable {
    var body: [UInt8] = []
    var tooLarge = false
    var dispatched = false
    var response: HTTPResponse?

    /// `con_cls` after the first call, before any context: an address no object can have.
    static var started: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 1)! }

    /// The context `con_cls` holds, if one was made.
    static func existing(_ state: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> RequestContext? {
        guard let raw = state.pointee, raw != started else { return nil }
        return Unmanaged<RequestContext>.fromOpaque(raw).takeUnretainedValue()
    }

    /// A new context, held by `con_cls` (released by `completedHandler`).
    static func adopt(_ state: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> RequestContext {
        let context = RequestContext()
        state.pointee = Unmanaged.passRetained(context).toOpaque()
        return context
    }
}

/// @unchecked: the pointer is only used to resume the connection it was suspended from.
struct SuspendedConnection: @unchecked Sendable {
    let pointer: OpaquePointer
}

private let accessHandler: MHD_AccessHandlerCallback = { cls, connection, url, method, _, upload, uploadSize, state in
    guard let cls, let connection, let uploadSize, let state else { return rollgate_mhd_no() }
    // The first call for a request brings its headers only: MHD calls again for the body, or
    // with nothing when there is none, and the request is answered then.
    guard state.pointee != nil else {
        state.pointee = RequestContext.started
        return rollgate_mhd_yes()
    }
    let server = Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue()
    return server.access(connection, url: url.map { String(cString: $0) } ?? "/",
                         method: method.map { String(cString: $0) } ?? "GET",
                         upload: upload, uploadSize: uploadSize, state: state)
}

private let connectionNotified: MHD_NotifyConnectionCallback = { cls, connection, context, code in
    guard let cls, let connection else { return }
    Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue().connection(connection, code, context)
}

extension RequestDeadlines {
    /// The clock kept in a connection's socket context (nil before MHD said it started).
    /// Called on the connection's own MHD thread, where its "closed" notification also runs.
    static func clock(of connection: OpaquePointer) -> Clock? {
        rollgate_mhd_socket_context(connection).map { Unmanaged<Clock>.fromOpaque($0).takeUnretainedValue() }
    }
}

private let completedHandler: MHD_RequestCompletedCallback = { cls, connection, state, _ in
    if let connection { RequestDeadlines.clock(of: connection)?.answered() }
    guard let cls, let state, let raw = state.pointee else { return }
    state.pointee = nil
    guard raw != RequestContext.started else { return }
    let context = Unmanaged<RequestContext>.fromOpaque(raw).takeRetainedValue()
    if context.dispatched {
        Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue().requestCompleted()
    }
}

/// A reference that does not keep its object alive.
struct Weak<T: AnyObject>: @unchecked Sendable {
    // @unchecked: only read and replaced under the server's `streams` lock.
    weak var value: T?
    init(_ value: T) { self.value = value }
}

/// libmicrohttpd's response for an answer that never changes, made on first use and kept for
/// the life of the process (MHD counts its references: queuing it again is safe).
public final class ConstantResponse: Sendable {
    /// @unchecked: the pointer is only handed to MHD, which locks its own responses.
    private struct Made: @unchecked Sendable { let pointer: OpaquePointer }
    private let response = Mutex<Made?>(nil)

    public init() {}

    func made(_ build: () -> OpaquePointer?) -> OpaquePointer? {
        response.withLock { held in
            if let held { return held.pointer }
            guard let built = build() else { return nil }
            held = Made(pointer: built)
            return built
        }
    }
}
