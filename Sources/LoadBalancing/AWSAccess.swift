import Configuration
import ELB
import Outbound
import Rollout

/// Builds ELBv2 clients from the config's `aws:` section and the environment, as the AWS
/// CLI would: region from the config, the target group's ARN, `AWS_REGION`,
/// `AWS_DEFAULT_REGION` or the profile; endpoint from `endpoint_url` or `AWS_ENDPOINT_URL`.
struct AWSAccess: Sendable {
    let settings: AWSSettings
    let environment: [String: String]
    let clock: any RolloutClock
    let metrics: RollMetrics
    /// The process's one outbound client: every AWS call and the instance metadata go through it.
    let http: any OutboundHTTP
    var retry = RetryPolicy()
    /// The account's API budget per region, shared by every client this access makes.
    let budgets: AWSCallBudgets

    init(settings: AWSSettings, environment: [String: String], clock: any RolloutClock, metrics: RollMetrics,
         http: any OutboundHTTP, retry: RetryPolicy = RetryPolicy()) {
        self.settings = settings
        self.http = http
        self.environment = environment
        self.clock = clock
        self.metrics = metrics
        self.retry = retry
        budgets = AWSCallBudgets(rates: AWSCallBudget.Rates(describePerSecond: settings.budget.describePerSecond,
                                                            changesPerSecond: settings.budget.changesPerSecond), clock: clock)
    }

    struct Problem: Error, CustomStringConvertible { let description: String }

    /// One group's load balancer, or several rolled as one (`TargetGroups`).
    func loadBalancer(for arns: [String]) -> Result<any LoadBalancer, Problem> {
        var groups: [ELBLoadBalancer] = []
        for arn in arns {
            switch loadBalancer(for: arn) {
            case .success(let group): groups.append(group)
            case .failure(let problem): return .failure(problem)
            }
        }
        return .success(groups.count == 1 ? groups[0] : TargetGroups(groups))
    }

    func loadBalancer(for arn: String) -> Result<ELBLoadBalancer, Problem> {
        let chain = CredentialChain(environment: environment, http: http, clock: clock)
        let transport = OutboundTransport(http: http)
        // arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID
        let arnRegion = arn.split(separator: ":", omittingEmptySubsequences: false).dropFirst(3).first.map(String.init)
        guard let region = settings.region ?? arnRegion.flatMap({ $0.isEmpty ? nil : $0 }) ?? chain.region() else {
            return .failure(Problem(description: "no AWS region: set aws.region in the config or AWS_REGION"))
        }
        // An override (moto, LocalStack) serves every service on one endpoint.
        var override: AWSEndpoint?
        if let url = settings.endpointURL ?? environment["AWS_ENDPOINT_URL"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard let parsed = AWSEndpoint(url: url) else { return .failure(Problem(description: "bad AWS endpoint URL \(url)")) }
            override = parsed
        }
        let elb = ELBv2Client(endpoint: override ?? .elbv2(region: region), region: region, credentials: chain, transport: transport,
                              clock: clock, retry: retry, metrics: metrics, budget: budgets.budget(region: region))
        let ec2 = EC2Client(endpoint: override ?? EC2Client.endpoint(region: region), region: region, credentials: chain, transport: transport,
                            clock: clock, retry: retry, metrics: metrics, budget: budgets.budget(region: region, api: "ec2"))
        return .success(ELBLoadBalancer(client: elb, targetGroupARN: arn, ec2: ec2))
    }
}
