/// The one EC2 call rollgate needs: an instance's private address, for `ROLLGATE_TARGET_HOST`.
public struct EC2Client: Sendable {
    let query: AWSQueryClient

    public init(endpoint: AWSEndpoint, region: String, credentials: any AWSCredentialProvider,
                transport: any AWSTransport = URLSessionTransport(), clock: any RolloutClock = SystemClock(),
                retry: RetryPolicy = RetryPolicy(), random: @escaping @Sendable () -> Double = { Double.random(in: 0...1) },
                metrics: RollMetrics = RollMetrics()) {
        query = AWSQueryClient(endpoint: endpoint, region: region, service: "ec2", version: "2016-11-15",
                               credentials: credentials, transport: transport, clock: clock, retry: retry, random: random,
                               metrics: metrics)
    }

    public static func endpoint(region: String) -> AWSEndpoint { AWSEndpoint(host: "ec2.\(region).amazonaws.com") }

    /// DescribeInstances for one id: its `privateIpAddress`, nil if EC2 does not know it.
    public func privateAddress(ofInstance id: String) async throws -> String? {
        var form = query.form("DescribeInstances")
        form.add("InstanceId.1", id)   // EC2 lists are Name.N, not Name.member.N
        let root = try await query.call(form)
        let instance = root.descendants("instancesSet").flatMap { $0.children("item") }.first { $0.value("instanceId") == id }
        return instance?.value("privateIpAddress")
    }
}

import Rollout
