/// The one EC2 call rollgate needs: an instance's private address, for `ROLLGATE_TARGET_HOST`.
/// Behind a budget of its own (EC2 throttles apart from ELB; a Throttling answer waits, never
/// fails a run), and remembered: an instance keeps its private address for its whole life.
public struct EC2Client: Sendable {
    let query: AWSQueryClient
    let known = KnownAddresses()

    public init(endpoint: AWSEndpoint, region: String, credentials: any AWSCredentialProvider,
                transport: any AWSTransport, clock: any RolloutClock = SystemClock(),
                retry: RetryPolicy = RetryPolicy(), random: @escaping @Sendable () -> Double = { Double.random(in: 0...1) },
                metrics: RollMetrics = RollMetrics(), budget: AWSCallBudget? = nil) {
        query = AWSQueryClient(endpoint: endpoint, region: region, service: "ec2", version: "2016-11-15",
                               credentials: credentials, transport: transport, clock: clock, retry: retry, random: random,
                               metrics: metrics, budget: budget)
    }

    /// Instance ids and their private addresses, as EC2 gave them.
    final class KnownAddresses: Sendable {
        private let addresses = Mutex<[String: String]>([:])
        subscript(id: String) -> String? {
            get { addresses.withLock { $0[id] } }
            set { addresses.withLock { $0[id] = newValue } }
        }
    }

    public static func endpoint(region: String) -> AWSEndpoint { AWSEndpoint(host: "ec2.\(region).amazonaws.com") }

    /// DescribeInstances for one id: its `privateIpAddress`, nil if EC2 does not know it.
    public func privateAddress(ofInstance id: String) async throws -> String? {
        if let address = known[id] { return address }
        var form = query.form("DescribeInstances")
        form.add("InstanceId.1", id)   // EC2 lists are Name.N, not Name.member.N
        let root = try await query.call(form)
        let instance = root.descendants("instancesSet").flatMap { $0.children("item") }.first { $0.value("instanceId") == id }
        let address = instance?.value("privateIpAddress")
        if let address { known[id] = address }
        return address
    }
}

import Rollout
import Synchronization
