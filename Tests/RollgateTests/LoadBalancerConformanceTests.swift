import Foundation
import Testing
import ELB
import Outbound
import Rollout
import RolloutTesting
import SQLiteStore
@testable import SQLStore

/// The same contract checked against every `LoadBalancer`: the simulated one and the ELBv2
/// client against moto_server. What the roll relies on must hold for both.
@Suite(.serialized) struct LoadBalancerConformanceTests {
    enum Kind: String, CaseIterable, Sendable { case simulated, elbv2OnMoto }

    /// A load balancer of the kind, its targets, and how to clean up.
    func make(_ kind: Kind, directory: TempDirectory) async throws -> (any LoadBalancer, [Target], () -> Void) {
        switch kind {
        case .simulated:
            let store = try Store(path: directory.path + "/conformance.db", migrator: Migrator(directory: migrationsDirectory))
            let lb = try SimulatedLoadBalancer(service: "web", settings: SimulationSettings(targets: 3, drainTime: .milliseconds(300),
                                                                                            healthyTime: .milliseconds(300), port: 8080),
                                               store: store, clock: SystemClock())
            return (lb, (1...3).map { Target(id: "web-\($0)", port: 8080) }, {})
        case .elbv2OnMoto:
            let moto = try await MotoServer()
            let (arn, instances) = try await moto.createTargetGroup()
            let http = CurlHTTP()
            let chain = CredentialChain(environment: ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                                                      "AWS_EC2_METADATA_DISABLED": "true"], http: http)
            let endpoint = AWSEndpoint(url: moto.endpoint)!, transport = OutboundTransport(http: http)
            let lb = ELBLoadBalancer(client: ELBv2Client(endpoint: endpoint, region: "us-east-1", credentials: chain, transport: transport),
                                     targetGroupARN: arn,
                                     ec2: EC2Client(endpoint: endpoint, region: "us-east-1", credentials: chain, transport: transport))
            return (lb, instances.map { Target(id: $0, port: 8080) }, { moto.stop() })
        }
    }

    func waitFor(_ rule: Waiter.Rule, _ target: Target, on lb: any LoadBalancer) async throws -> Waiter.Outcome {
        try await Waiter(clock: SystemClock(), pollInterval: .milliseconds(100), timeout: .seconds(10)).wait(for: target, until: rule, on: lb)
    }

    @Test(arguments: Kind.allCases)
    func theContractTheRollReliesOn(kind: Kind) async throws {
        let directory = TempDirectory()
        let (lb, targets, cleanUp) = try await make(kind, directory: directory)
        defer { cleanUp() }
        // Every registered target is listed, healthy, with its port.
        let listed = try await lb.targets()
        #expect(listed.map(\.target).sorted() == targets.sorted())
        #expect(listed.allSatisfy { $0.health.state == .healthy })
        // Deregistered, it drains, then counts as drained; the others stay listed.
        let target = targets.sorted()[0]
        try await lb.deregister(target)
        guard case .met = try await waitFor(.drained, target, on: lb) else { Issue.record("\(kind): never drained"); return }
        #expect(try await lb.targets().map(\.target).sorted() == Array(targets.sorted().dropFirst()))
        // Registered again, it becomes healthy.
        try await lb.register(target)
        guard case .met = try await waitFor(.inService, target, on: lb) else { Issue.record("\(kind): never healthy"); return }
        #expect(try await lb.targets().map(\.target).sorted() == targets.sorted())
        // A target the group does not know is not healthy, whatever the answer's shape.
        #expect(!Waiter.Rule.inService.isMet(by: try await lb.health(of: Target(id: "i-00000000000000000", port: 8080))))
    }
}
