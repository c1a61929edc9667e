/// An answer: status, headers and a body held in memory, or a stream written over time.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// When set, the body is what the stream's producer writes, until it finishes.
    public var stream: HTTPStream?
    /// When set, this answer never changes: the server builds libmicrohttpd's response for it
    /// once and queues the same one every time (no allocation, no copy per request).
    public var constant: ConstantResponse?

    public init(status: Int = 200, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public init(status: Int = 200, contentType: String, text: String) {
        self.init(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
    }

    public static func json(_ status: Int = 200, _ bytes: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: bytes)
    }

    /// The one error shape every client sees: `{"error": {"code", "message", "hint"?}}`: what
    /// happened, and apart from it what an API client can do about it.
    public static func error(_ status: Int, code: String, message: String, hint: String? = nil) -> HTTPResponse {
        let text = "{\"error\":{\"code\":\(JSONText.quote(code)),\"message\":\(JSONText.quote(message))"
            + (hint.map { ",\"hint\":\(JSONText.quote($0))" } ?? "") + "}}"
        return HTTPResponse(status: status, contentType: "application/json", text: text)
    }

    /// The same answer, built once by the server and reused for every request.
    public func reused() -> HTTPResponse {
        var response = self
        response.constant = ConstantResponse()
        return response
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// JSON string quoting, byte by byte: the one implementation error bodies and the API share.
public enum JSONText {
    public static func quote(_ s: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count + 2)
        appendQuoted(s, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `"s"` with `"`, `\\` and control characters escaped; other UTF-8 passes as is.
    public static func appendQuoted(_ s: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            if needsEscaping(utf8) {
                escape(utf8) { bytes.append($0) }
            } else {
                bytes.append(contentsOf: utf8)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Whether any byte must be escaped inside a JSON string: `"`, `\\` or a control character.
    @inlinable
    public static func needsEscaping(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
    }

    /// The bytes of `utf8` as they go inside a JSON string (without the quotes), one at a time.
    public static func escape(_ utf8: UnsafeBufferPointer<UInt8>, _ emit: (UInt8) -> Void) {
        let hex: StaticString = "0123456789abcdef"
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""): emit(92); emit(34)
            case UInt8(ascii: "\\"): emit(92); emit(92)
            case 10: emit(92); emit(UInt8(ascii: "n"))
            case 13: emit(92); emit(UInt8(ascii: "r"))
            case 9: emit(92); emit(UInt8(ascii: "t"))
            case 0..<0x20:
                for escaped in [92, UInt8(ascii: "u"), 48, 48, hex.utf8Start[Int(byte >> 4)], hex.utf8Start[Int(byte & 15)]] {
                    emit(escaped)
                }
            default: emit(byte)
            }
        }
    }
}
