import Logging
import Rollout
import Rollgate
#if canImport(Glibc)
import Glibc
#endif

/// `--log-format text` (the default): one line a record on stderr,
/// `AT LEVEL LABEL: MESSAGE key=value ...`. What a record holds comes from outside (a
/// request's path, a hook's command, a webhook's text), so a control character is written as
/// `\u{A}` (a `%0a` in a path cannot forge a line) and rollgate's secrets as `***`.
struct TextLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let mask: SecretMask

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = "\(Timestamp.format(Date())) \(event.level.rawValue) \(label): \(clean(event.message.description))"
        let merged = metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new })
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += " \(clean(key))=\(clean("\(value)"))"
        }
        if let error = event.error { line += " error=\(clean("\(error)"))" }
        line += "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    private func clean(_ text: String) -> String { VisibleText.escape(mask.apply(text)) }
}
