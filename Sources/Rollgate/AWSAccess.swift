import ELB
import Rollout

/// Builds ELBv2 clients from the config's `aws:` section and the environment, as the AWS
/// CLI would: region from the config, the target group's ARN, `AWS_REGION`,
/// `AWS_DEFAULT_REGION` or the profile; endpoint from `endpoint_url` or `AWS_ENDPOINT_URL`.
struct AWSAccess: Sendable {
    let settings: AWSSettings
    let environment: [String: String]
    let clock: any RolloutClock

    struct Problem: Error, CustomStringConvertible { let description: String }

    func client(for arn: String) -> Result<ELBv2Client, Problem> {
        let chain = CredentialChain(environment: environment)
        // arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID
        let arnRegion = arn.split(separator: ":", omittingEmptySubsequences: false).dropFirst(3).first.map(String.init)
        guard let region = settings.region ?? arnRegion.flatMap({ $0.isEmpty ? nil : $0 }) ?? chain.region() else {
            return .failure(Problem(description: "no AWS region: set aws.region in the config or AWS_REGION"))
        }
        let endpoint: AWSEndpoint
        if let url = settings.endpointURL ?? environment["AWS_ENDPOINT_URL"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard let parsed = AWSEndpoint(url: url) else { return .failure(Problem(description: "bad AWS endpoint URL \(url)")) }
            endpoint = parsed
        } else {
            endpoint = .elbv2(region: region)
        }
        return .success(ELBv2Client(endpoint: endpoint, region: region, credentials: chain, clock: clock))
    }
}
