import HTTPAPI

/// `rollgate --version`.
enum RollgateVersion {
    static let text = API.version
}
