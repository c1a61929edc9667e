import Logging
import Rollout
import Rollgate
#if canImport(Glibc)
import Glibc
#endif

/// `--log-format json`: one JSON object a line on stderr, for journald and log shippers:
/// `{"at","level","label","message", ...metadata}`.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    /// rollgate's secrets, written as `***` in every field.
    let mask: SecretMask

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [(String, JSONValue)] = [("at", .string(Timestamp.format(Date()))), ("level", .string(event.level.rawValue)),
                                             ("label", .string(label)), ("message", .string(mask.apply(event.message.description)))]
        if let error = event.error { fields.append(("error", .string(mask.apply("\(error)")))) }
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }).sorted(by: { $0.key < $1.key }) {
            fields.append((key, .string(mask.apply("\(value)"))))
        }
        var bytes = JSONValue.object(fields).bytes
        bytes.append(10)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
