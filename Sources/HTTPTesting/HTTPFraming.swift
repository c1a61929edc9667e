/// Splits what a server wrote on one connection into its responses, checking the framing:
/// each is a status line, headers, and a body exactly as long as its Content-Length (or,
/// without one, everything up to the close). Nil when the bytes are not such a sequence: a
/// status line or header block sent twice makes the second "response" start with bytes that
/// are not a status line, or a body of the wrong length.
public enum HTTPFraming {
    public struct Response: Sendable {
        public let status: String
        public let headers: [(name: String, value: String)]
        public let body: [UInt8]
    }

    public static func split(_ bytes: [UInt8]) -> [Response]? {
        var responses: [Response] = []
        var at = 0
        let separator: [UInt8] = [13, 10, 13, 10]
        while at < bytes.count {
            guard let end = find(separator, in: bytes, from: at) else { return nil }
            let head = String(decoding: bytes[at..<end], as: UTF8.self).components(separatedBy: "\r\n")
            let statusLine = head[0].split(separator: " ", maxSplits: 2)
            guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), statusLine[1].count == 3 else { return nil }
            var headers: [(name: String, value: String)] = []
            for line in head.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { return nil }
                headers.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingSpaces))
            }
            let lengths = headers.filter { $0.name == "content-length" }
            guard lengths.count <= 1 else { return nil }
            let bodyStart = end + 4
            let bodyEnd: Int
            if let length = lengths.first.flatMap({ Int($0.value) }) {
                guard bodyStart + length <= bytes.count else { return nil }
                bodyEnd = bodyStart + length
            } else {
                bodyEnd = bytes.count
            }
            responses.append(Response(status: String(statusLine[1]), headers: headers, body: Array(bytes[bodyStart..<bodyEnd])))
            at = bodyEnd
        }
        return responses
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        var index = start
        while index + needle.count <= bytes.count {
            if bytes[index] == needle[0] && bytes[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}

extension Substring {
    var trimmingSpaces: String { String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed()) }
}
