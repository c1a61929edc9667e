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

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        var fields: [(String, JSONValue)] = [("at", .string(Timestamp.format(Date()))), ("level", .string(level.rawValue)),
                                             ("label", .string(label)), ("message", .string(message.description))]
        for (key, value) in self.metadata.merging(metadata ?? [:], uniquingKeysWith: { _, new in new }).sorted(by: { $0.key < $1.key }) {
            fields.append((key, .string("\(value)")))
        }
        var bytes = JSONValue.object(fields).bytes
        bytes.append(10)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
