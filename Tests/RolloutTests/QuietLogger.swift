import Logging

extension Logger {
    /// Tests never bootstrap the global logging system; they pass this.
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
}
