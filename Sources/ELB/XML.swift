/// A parsed XML element: local name, children and text. Enough for AWS Query answers
/// (no attributes are needed; namespaces are dropped, prefixes too).
public struct XMLElement: Sendable, Equatable {
    public var name: String
    public var children: [XMLElement]
    public var text: String

    public init(name: String, children: [XMLElement] = [], text: String = "") {
        self.name = name
        self.children = children
        self.text = text
    }

    public func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
    public func children(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }

    /// The element at a path of names below this one.
    public func at(_ path: String...) -> XMLElement? {
        var current: XMLElement? = self
        for name in path { current = current?.child(name) }
        return current
    }

    /// Text of a child, trimmed; nil if there is no such child.
    public func value(_ name: String) -> String? { child(name).map { $0.text.trimmedXMLSpace } }

    /// Every element with this name, at any depth, in document order.
    public func descendants(_ name: String) -> [XMLElement] {
        children.flatMap { ($0.name == name ? [$0] : []) + $0.descendants(name) }
    }
}

public struct XMLError: Error, CustomStringConvertible, Equatable {
    public let description: String
}

extension StringProtocol {
    /// The text without the characters `isSpace` picks at its start and end.
    func trimmed(where isSpace: (Character) -> Bool) -> String {
        String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}

extension String {
    var trimmedXMLSpace: String { trimmed { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" } }
}

/// A small non-validating XML parser for well-formed documents.
public enum XMLDocument {
    public static func parse(_ bytes: [UInt8]) throws -> XMLElement {
        var parser = Parser(bytes: bytes)
        return try parser.document()
    }

    public static func parse(_ text: String) throws -> XMLElement { try parse(Array(text.utf8)) }

    struct Parser {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func document() throws -> XMLElement {
            skipMisc()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "<") else { throw XMLError(description: "no root element") }
            let root = try element()
            skipMisc()
            guard index == bytes.count else { throw XMLError(description: "content after the root element") }
            return root
        }

        /// Whitespace, `<?...?>`, comments and a doctype.
        mutating func skipMisc() {
            while index < bytes.count {
                if isSpace(bytes[index]) { index += 1; continue }
                if starts("<?") { skip(past: "?>"); continue }
                if starts("<!--") { skip(past: "-->"); continue }
                if starts("<!DOCTYPE") { skip(past: ">"); continue }
                return
            }
        }

        mutating func element() throws -> XMLElement {
            index += 1   // <
            let name = readName()
            guard !name.isEmpty else { throw XMLError(description: "an element without a name at byte \(index)") }
            // Attributes are skipped (quoted values may hold '>').
            var selfClosing = false
            while true {
                guard index < bytes.count else { throw XMLError(description: "unterminated tag <\(name)") }
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                    index += 1
                    while index < bytes.count && bytes[index] != byte { index += 1 }
                    index += 1
                } else if byte == UInt8(ascii: "/") && index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: ">") {
                    selfClosing = true
                    index += 2
                    break
                } else if byte == UInt8(ascii: ">") {
                    index += 1
                    break
                } else {
                    index += 1
                }
            }
            var result = XMLElement(name: localName(name))
            if selfClosing { return result }
            var text: [UInt8] = []
            while true {
                guard index < bytes.count else { throw XMLError(description: "element <\(name)> is not closed") }
                if starts("</") {
                    index += 2
                    let closing = readName()
                    guard closing == name else { throw XMLError(description: "<\(name)> closed by </\(closing)>") }
                    while index < bytes.count && bytes[index] != UInt8(ascii: ">") { index += 1 }
                    index += 1
                    result.text = try decodeEntities(text)
                    return result
                }
                if starts("<!--") { skip(past: "-->"); continue }
                if starts("<![CDATA[") {
                    index += 9
                    while index < bytes.count && !starts("]]>") { text.append(bytes[index]); index += 1 }
                    index += 3
                    continue
                }
                if bytes[index] == UInt8(ascii: "<") {
                    result.children.append(try element())
                    continue
                }
                text.append(bytes[index])
                index += 1
            }
        }

        mutating func readName() -> String {
            let start = index
            while index < bytes.count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: ">"), bytes[index] != UInt8(ascii: "/") {
                index += 1
            }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        func localName(_ name: String) -> String {
            name.split(separator: ":").last.map(String.init) ?? name
        }

        func decodeEntities(_ raw: [UInt8]) throws -> String {
            guard raw.contains(UInt8(ascii: "&")) else { return String(decoding: raw, as: UTF8.self) }
            let text = String(decoding: raw, as: UTF8.self)
            var out = ""
            var rest = Substring(text)
            while let amp = rest.firstIndex(of: "&") {
                out += rest[..<amp]
                guard let semicolon = rest[amp...].firstIndex(of: ";") else { throw XMLError(description: "an unterminated entity") }
                let entity = rest[rest.index(after: amp)..<semicolon]
                switch entity {
                case "amp": out += "&"
                case "lt": out += "<"
                case "gt": out += ">"
                case "quot": out += "\""
                case "apos": out += "'"
                default:
                    let code: UInt32?
                    if entity.hasPrefix("#x") { code = UInt32(entity.dropFirst(2), radix: 16) }
                    else if entity.hasPrefix("#") { code = UInt32(entity.dropFirst()) }
                    else { code = nil }
                    guard let code, let scalar = Unicode.Scalar(code) else { throw XMLError(description: "unknown entity &\(entity);") }
                    out.unicodeScalars.append(scalar)
                }
                rest = rest[rest.index(after: semicolon)...]
            }
            return out + rest
        }

        func starts(_ literal: String) -> Bool {
            let utf8 = Array(literal.utf8)
            guard index + utf8.count <= bytes.count else { return false }
            return Array(bytes[index..<(index + utf8.count)]) == utf8
        }

        mutating func skip(past literal: String) {
            while index < bytes.count && !starts(literal) { index += 1 }
            index = min(bytes.count, index + literal.utf8.count)
        }

        func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 10 || byte == 13 || byte == 9 }
    }
}
