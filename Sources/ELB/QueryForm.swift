/// The body of an AWS Query request: `Action=Op&Version=...&Name=value`, encoded as
/// botocore does (space as `+`, `~` kept, everything else but unreserved as upper-case %XX).
public struct QueryForm: Sendable, Equatable {
    public private(set) var pairs: [(String, String)]

    public init(action: String, version: String) {
        pairs = [("Action", action), ("Version", version)]
    }

    public static func == (a: QueryForm, b: QueryForm) -> Bool {
        a.pairs.count == b.pairs.count && zip(a.pairs, b.pairs).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    public mutating func add(_ name: String, _ value: String) { pairs.append((name, value)) }

    /// Lists are `Name.member.N` from 1; structures `Name.member.N.Field`.
    public mutating func addList(_ name: String, _ items: [[(String, String)]]) {
        for (index, fields) in items.enumerated() {
            for (field, value) in fields { pairs.append(("\(name).member.\(index + 1).\(field)", value)) }
        }
    }

    public mutating func addList(_ name: String, _ values: [String]) {
        for (index, value) in values.enumerated() { pairs.append(("\(name).member.\(index + 1)", value)) }
    }

    public var encoded: String {
        pairs.map { "\(QueryForm.encode($0.0))=\(QueryForm.encode($0.1))" }.joined(separator: "&")
    }

    static func encode(_ text: String) -> String { SigV4Signer.uriEncode(text, spaceAsPlus: true) }
}
