import Rollout

/// Durations as the config writes them: `500ms`, `30s`, `10m`, `1h`, `1m30s`, `30d`.
public enum DurationText {
    public static func parse(_ text: String) -> Duration? {
        var total: Int64 = 0   // milliseconds
        var digits = ""
        var unit = ""
        var parts: [(Int64, String)] = []
        for character in text {
            if character.isASCII && character.isNumber {
                if !unit.isEmpty {
                    guard let value = Int64(digits) else { return nil }
                    parts.append((value, unit)); digits = ""; unit = ""
                }
                digits.append(character)
            } else if character.isLetter {
                guard !digits.isEmpty else { return nil }
                unit.append(character)
            } else {
                return nil
            }
        }
        guard !digits.isEmpty, !unit.isEmpty, let value = Int64(digits) else { return nil }
        parts.append((value, unit))
        for (value, unit) in parts {
            let factor: Int64
            switch unit {
            case "ms": factor = 1
            case "s": factor = 1000
            case "m": factor = 60_000
            case "h": factor = 3_600_000
            case "d": factor = 86_400_000
            default: return nil
            }
            let (product, overflow) = value.multipliedReportingOverflow(by: factor)
            guard !overflow, product <= 366 * 86_400_000 else { return nil }
            total += product
            guard total <= 366 * 86_400_000 else { return nil }
        }
        return .milliseconds(total)
    }
}
