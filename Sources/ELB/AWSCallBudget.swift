import Rollout
import Synchronization

/// The share of the account's ELB API limit rollgate spends. ELB throttles each account and
/// region with token buckets (Describe* calls: 40 tokens refilled at 10 a second; the actions
/// that change targets have a bucket of their own), shared with the console, Terraform and
/// every other tool. rollgate keeps its own two buckets below those: every call takes a token
/// first, waiting its turn (first come, first served, so lag grows smoothly with the number
/// of waiting polls instead of collapsing into throttling); a Throttling answer halves the
/// rate (never below an eighth of it) and successes bring it back a twentieth at a time.
public actor AWSCallBudget {
    public enum Kind: String, Sendable, CaseIterable {
        /// Describe* (DescribeTargetHealth, DescribeTargetGroups, ...).
        case describe
        /// RegisterTargets, DeregisterTargets, ModifyTargetGroup and every other change.
        case change

        public static func of(action: String) -> Kind { action.hasPrefix("Describe") ? .describe : .change }
    }

    public struct Rates: Sendable, Equatable {
        public var describePerSecond: Double
        public var changesPerSecond: Double

        public init(describePerSecond: Double = 4, changesPerSecond: Double = 2) {
            self.describePerSecond = describePerSecond
            self.changesPerSecond = changesPerSecond
        }

        func perSecond(_ kind: Kind) -> Double { kind == .describe ? describePerSecond : changesPerSecond }
    }

    struct Bucket {
        /// The configured rate: rollgate's share of the account's limit, for all its replicas.
        let base: Double
        /// This process's part of it (see `share(_:)`).
        var configured: Double
        var rate: Double
        /// May go below zero: each reservation debits one token in arrival order, and waits
        /// until the refill has paid it back.
        var tokens: Double
        var refilledAt: Duration
        /// At most a second's worth of calls go at once.
        var capacity: Double { max(1, rate) }
    }

    let clock: any RolloutClock
    private var buckets: [Kind: Bucket]
    private var throttles: [Kind: Int] = [:]

    public init(rates: Rates = Rates(), clock: any RolloutClock, share: Double = 1) {
        self.clock = clock
        let now = clock.uptime
        var buckets: [Kind: Bucket] = [:]
        for kind in Kind.allCases {
            let base = max(0.01, rates.perSecond(kind)), rate = base * AWSCallBudget.clamped(share)
            buckets[kind] = Bucket(base: base, configured: rate, rate: rate, tokens: max(1, rate), refilledAt: now)
        }
        self.buckets = buckets
    }

    /// Takes the next token of `kind`: how long the caller must wait before sending (zero
    /// when one is free now). The caller sleeps that long; the token is its own meanwhile.
    public func reserve(_ kind: Kind) -> Duration {
        var bucket = refilled(kind)
        bucket.tokens -= 1
        buckets[kind] = bucket
        return bucket.tokens >= 0 ? .zero : .seconds(-bucket.tokens / bucket.rate)
    }

    /// The account's limit answered Throttling: other tools are spending it too. Halve.
    public func throttled(_ kind: Kind) {
        var bucket = refilled(kind)
        bucket.rate = max(bucket.configured / 8, bucket.rate / 2)
        bucket.tokens = min(bucket.tokens, 0)
        buckets[kind] = bucket
        throttles[kind, default: 0] += 1
    }

    /// A call went through: the rate creeps back towards the configured one.
    public func succeeded(_ kind: Kind) {
        var bucket = refilled(kind)
        bucket.rate = min(bucket.configured, bucket.rate + bucket.configured / 20)
        buckets[kind] = bucket
    }

    /// Several replicas on one database spend one account's limit: each takes its `fraction`
    /// of the configured rates (the rate in force drops at once, and creeps back up on
    /// successes when the fraction grows).
    public func share(_ fraction: Double) {
        let fraction = AWSCallBudget.clamped(fraction)
        for kind in Kind.allCases {
            var bucket = refilled(kind)
            bucket.configured = bucket.base * fraction
            bucket.rate = min(bucket.rate, bucket.configured)
            bucket.tokens = min(bucket.tokens, bucket.capacity)
            buckets[kind] = bucket
        }
    }

    /// A fraction in (0, 1]: never nothing (a replica always may call), never above the whole.
    static func clamped(_ fraction: Double) -> Double { fraction.isFinite ? min(1, max(0.01, fraction)) : 1 }

    /// The rate in force now, in calls per second.
    public func rate(_ kind: Kind) -> Double { buckets[kind]!.rate }
    public func throttledCount(_ kind: Kind) -> Int { throttles[kind, default: 0] }

    private func refilled(_ kind: Kind) -> Bucket {
        var bucket = buckets[kind]!
        let now = clock.uptime
        bucket.tokens = min(bucket.capacity, bucket.tokens + (now - bucket.refilledAt).seconds * bucket.rate)
        bucket.refilledAt = now
        return bucket
    }
}

/// One budget per API and region (an account's limits are per API and region), shared by
/// every service's clients, the viewers' cache and `check-config --remote` of one process.
public final class AWSCallBudgets: Sendable {
    public let rates: AWSCallBudget.Rates
    let clock: any RolloutClock
    private let byRegion = Mutex<[String: AWSCallBudget]>([:])
    /// This process's fraction of the rates (1 but on PostgreSQL with others alive).
    private let fraction = Mutex(1.0)

    public init(rates: AWSCallBudget.Rates = .init(), clock: any RolloutClock) {
        self.rates = rates
        self.clock = clock
    }

    /// The budget of one API in one region: ELB's (`elasticloadbalancing`, the default) and
    /// EC2's limits are separate accounts' buckets, so each has a budget of its own.
    public func budget(region: String, api: String = "elasticloadbalancing") -> AWSCallBudget {
        byRegion.withLock { budgets in
            let key = "\(api)/\(region)"
            if let budget = budgets[key] { return budget }
            let budget = AWSCallBudget(rates: rates, clock: clock, share: fraction.withLock { $0 })
            budgets[key] = budget
            return budget
        }
    }

    /// Every budget of this process takes `fraction` of the rates from now on.
    public func share(_ fraction: Double) async {
        let fraction = AWSCallBudget.clamped(fraction)
        let all = byRegion.withLock { budgets in
            self.fraction.withLock { $0 = fraction }
            return Array(budgets.values)
        }
        for budget in all { await budget.share(fraction) }
    }

    /// This process's fraction of the rates now.
    public var share: Double { fraction.withLock { $0 } }
}
