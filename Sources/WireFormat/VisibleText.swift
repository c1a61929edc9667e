/// Text that people read (a terminal, a log file, a page) shown as it is, never driving the
/// reader: control characters (C0, DEL, C1) and bidirectional controls become `\u{1B}`.
/// What is kept is the caller's choice (a text page keeps newlines and tabs).
public enum VisibleText {
    /// Bidirectional formatting characters (U+202A-202E, U+2066-2069, U+200E/200F, U+061C):
    /// they reorder what follows them on screen.
    package static func isBidiControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x061C: return true
        default: return false
        }
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    public static func escape(_ text: String, keeping kept: Set<Unicode.Scalar> = []) -> String {
        guard text.unicodeScalars.contains(where: { (isControl($0) || isBidiControl($0)) && !kept.contains($0) }) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if (isControl(scalar) || isBidiControl(scalar)) && !kept.contains(scalar) {
                out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16, uppercase: true))}".unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// Webhook text (a commit message, a name) as a record keeps it: every control or
    /// bidirectional character becomes a space, so a commit message with CRLF or a tab still
    /// deploys, and nothing it holds can forge a line.
    package static func flattened(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { isControl($0) || isBidiControl($0) }) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            out.append(isControl(scalar) || isBidiControl(scalar) ? " " : scalar)
        }
        return String(out)
    }
}
