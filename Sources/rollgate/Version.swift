import Configuration
import WireFormat
import LoadBalancing
import Hooks
import HTTPAPI
import RollgateServer

/// `rollgate --version`.
enum RollgateVersion {
    static let text = API.version
}
