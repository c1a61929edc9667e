/// One node of a YAML document, with the line it starts on (1-based), for error messages that
/// point at the file. Scalars stay text: the reader of the document decides what a value means,
/// so `version: 1.10` is never turned into the number 1.1 on the way.
public struct YAMLNode: Sendable {
    public enum Content: Sendable {
        /// `plain`: written without quotes, so `~`, `null` and nothing at all mean null.
        case scalar(String, plain: Bool)
        /// Keys in the order written; a key may appear twice (the reader decides).
        case mapping([(key: YAMLNode, value: YAMLNode)])
        case sequence([YAMLNode])
    }

    public let content: Content
    public let line: Int
    /// The explicit tag, such as `tag:yaml.org,2002:str` for `!!str`, if one was written.
    public let tag: String?

    public init(_ content: Content, line: Int, tag: String? = nil) {
        self.content = content
        self.line = line
        self.tag = tag
    }

    /// The scalar's text; nil for a mapping or a list.
    public var scalar: String? {
        if case .scalar(let text, _) = content { return text }
        return nil
    }

    public var mapping: [(key: YAMLNode, value: YAMLNode)]? {
        if case .mapping(let pairs) = content { return pairs }
        return nil
    }

    public var sequence: [YAMLNode]? {
        if case .sequence(let items) = content { return items }
        return nil
    }

    /// YAML's null: `~`, `null`, `Null`, `NULL` or an empty value, unquoted and untagged, or
    /// anything tagged `!!null`.
    public var isNull: Bool {
        if let tag { return tag == YAMLNode.nullTag }
        guard case .scalar(let text, plain: true) = content else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(text)
    }

    static let nullTag = "tag:yaml.org,2002:null"
}

/// What stopped a document from being read: libyaml's own words and where.
public struct YAMLError: Error, CustomStringConvertible, Equatable {
    public let line: Int
    public let column: Int
    public let message: String

    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "line \(line), column \(column): \(message)" }
}
