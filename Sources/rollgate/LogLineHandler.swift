import Configuration
import WireFormat
import Logging
import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// rollgate's own log, one line a record on stderr. What a record holds comes from outside (a
/// request's path, a hook's command, a webhook's text), so rollgate's secrets are written as
/// `***` in every field, and no field can forge a line:
/// - `text` (the default): `AT LEVEL LABEL: MESSAGE key=value ...`, a control character
///   shown as `\u{A}` (a `%0a` in a path cannot start a line of its own);
/// - `json` (`--log-format json`, for journald and log shippers): `{"at","level","label",
///   "message", ...metadata}`, control characters escaped as JSON escapes them.
struct LogLineHandler: LogHandler {
    enum Format { case text, json }

    let label: String
    let format: Format
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let mask: SecretMask

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new })
            .sorted { $0.key < $1.key }.map { ($0.key, mask.apply("\($0.value)")) }
        if let error = event.error { fields.append(("error", mask.apply("\(error)"))) }
        let at = Timestamp.format(Date())
        let message = mask.apply(event.message.description)
        var line: [UInt8]
        switch format {
        case .json:
            line = JSONValue.object([("at", .string(at)), ("level", .string(event.level.rawValue)), ("label", .string(label)),
                                     ("message", .string(message))] + fields.map { ($0.0, JSONValue.string($0.1)) }).bytes
        case .text:
            var text = "\(at) \(event.level.rawValue) \(label): \(VisibleText.escape(message))"
            for (key, value) in fields { text += " \(VisibleText.escape(key))=\(VisibleText.escape(value))" }
            line = Array(text.utf8)
        }
        line.append(10)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
