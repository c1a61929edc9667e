import RollgateServer

/// `rollgate --version`.
enum RollgateVersion {
    static let text = API.version
}
