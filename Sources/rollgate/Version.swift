/// `rollgate --version`.
enum RollgateVersion {
    static let text = "0.7.0"
}
