import CYAML

/// Reads one YAML document into a `YAMLNode` tree with libyaml's event parser. Anchors and
/// aliases are resolved (an alias is a copy of its anchor's node); more than one document in
/// the text is an error, as is an alias to an anchor not yet seen.
public enum YAMLDocument {
    /// The document's root, or nil when the text holds no document (empty, or comments only).
    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode? {
        var bytes = Array(text.utf8)
        let length = bytes.count
        if bytes.isEmpty { bytes.append(0) }  // libyaml wants a pointer; it reads `length` bytes
        // libyaml ends a text without a final newline with one of its own, so an empty value or
        // an error at the very end would point at a line the file does not have.
        let lastLine = bytes.reduce(1) { $1 == 10 ? $0 + 1 : $0 }
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLError(line: 0, column: 0, message: "out of memory starting the YAML parser")
        }
        defer { yaml_parser_delete(&parser) }
        return try bytes.withUnsafeBufferPointer { (buffer) throws(YAMLError) -> YAMLNode? in
            // No encoding set: libyaml then reads (and drops) a byte-order mark, as editors on
            // Windows write one; without one the text is UTF-8, as a Swift String's bytes are.
            yaml_parser_set_input_string(&parser, buffer.baseAddress, length)
            var composer = Composer(lastLine: lastLine)
            while !composer.finished {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { throw Self.error(of: parser, lastLine: lastLine) }
                defer { yaml_event_delete(&event) }
                try composer.take(event)
            }
            return composer.root
        }
    }

    private static func error(of parser: yaml_parser_t, lastLine: Int) -> YAMLError {
        let problem = parser.problem.map { String(cString: $0) } ?? "unreadable YAML"
        var message = problem
        if let context = parser.context {
            let line = parser.context_mark.line + 1
            message += line == parser.problem_mark.line + 1 ? " (\(String(cString: context)))" : " (\(String(cString: context)) on line \(line))"
        }
        return YAMLError(line: min(parser.problem_mark.line + 1, lastLine), column: parser.problem_mark.column + 1, message: message)
    }
}

/// Builds nodes from parser events: a stack of open mappings and lists, each added to in place.
private struct Composer {
    private struct Open {
        let isMapping: Bool
        let line: Int
        let tag: String?
        let anchor: String?
        /// A list's items; a mapping's keys and values in turn.
        var children: [YAMLNode] = []

        var node: YAMLNode {
            guard isMapping else { return YAMLNode(.sequence(children), line: line, tag: tag) }
            let pairs = stride(from: 0, to: children.count - 1, by: 2).map { (key: children[$0], value: children[$0 + 1]) }
            return YAMLNode(.mapping(pairs), line: line, tag: tag)
        }
    }

    /// The text's last line: no node is placed after it.
    let lastLine: Int
    private var stack: [Open] = []
    private var anchors: [String: YAMLNode] = [:]
    private var documents = 0
    private(set) var root: YAMLNode?
    private(set) var finished = false

    init(lastLine: Int) { self.lastLine = lastLine }

    mutating func take(_ event: yaml_event_t) throws(YAMLError) {
        let line = min(Int(event.start_mark.line) + 1, lastLine)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            guard documents == 1 else {
                throw YAMLError(line: line, column: Int(event.start_mark.column) + 1,
                                message: "a second document (---) in the file; the config is one document")
            }
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: Int(scalar.length)), as: UTF8.self)
            let node = YAMLNode(.scalar(text, plain: scalar.style == YAML_PLAIN_SCALAR_STYLE), line: line,
                                tag: Self.string(scalar.tag))
            add(node, anchor: Self.string(scalar.anchor))
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor) ?? ""
            guard let node = anchors[name] else {
                throw YAMLError(line: line, column: Int(event.start_mark.column) + 1, message: "alias *\(name) names no anchor (&\(name)) above it")
            }
            add(node, anchor: nil)
        case YAML_SEQUENCE_START_EVENT:
            let start = event.data.sequence_start
            stack.append(Open(isMapping: false, line: line, tag: Self.string(start.tag), anchor: Self.string(start.anchor)))
        case YAML_MAPPING_START_EVENT:
            let start = event.data.mapping_start
            stack.append(Open(isMapping: true, line: line, tag: Self.string(start.tag), anchor: Self.string(start.anchor)))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            let closed = stack.removeLast()
            add(closed.node, anchor: closed.anchor)
        case YAML_STREAM_END_EVENT:
            finished = true
        default:  // stream start, document end: nothing to build
            break
        }
    }

    private mutating func add(_ node: YAMLNode, anchor: String?) {
        if let anchor { anchors[anchor] = node }
        if stack.isEmpty {
            root = node
        } else {
            stack[stack.count - 1].children.append(node)
        }
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
    }
}
