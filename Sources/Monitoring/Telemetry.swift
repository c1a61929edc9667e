import CoreMetrics
import Prometheus
import Rollout
import Synchronization

/// The server's metrics: one Prometheus registry, fed through swift-metrics as things happen
/// (runs ending, targets rolled, waiter polls, hooks, load-balancer calls, HTTP requests,
/// notifications). A scrape adds a few gauges read from memory or small indexed queries and
/// writes the registry out: it costs the same whatever the history's size.
public final class Telemetry: Sendable {
    let registry = PrometheusCollectorRegistry()
    public let metrics: RollMetrics

    public init() {
        metrics = RollMetrics(factory: CatalogFactory(registry: registry))
    }

    /// What each metric means and, for histograms, its buckets (seconds).
    struct Entry {
        let help: String
        var buckets: [Double] = []
    }

    static let long: [Double] = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600]
    static let hook: [Double] = [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800]
    static let lag: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30]
    static let call: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    // Bucket bounds print at millisecond precision: none finer than 1 ms.
    static let request: [Double] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    static let catalog: [String: Entry] = {
        var entries: [String: Entry] = [:]
        for name in RollMetrics.Name.allCases {
            entries[name.rawValue] = switch name {
            case .runsFinished: Entry(help: "Runs that ended since this process started, by service and outcome.")
            case .runSeconds: Entry(help: "How long runs took from start to end, by service and outcome.", buckets: long)
            case .targetSeconds: Entry(help: "How long one target's roll took, from preflight to healthy.", buckets: long)
            case .outOfServiceSeconds: Entry(help: "How long a target served nothing, from DeregisterTargets to healthy.", buckets: long)
            case .waiterPolls: Entry(help: "Waiter polls of the load balancer, by rule and result (met, not_yet, error).")
            case .waiterLagSeconds: Entry(help: "At most how late a waiter saw the state it waited for: the time since the poll before.", buckets: lag)
            case .hooks: Entry(help: "Hooks run, by service, phase and result (exit_N, signal_N, timeout, not_started).")
            case .hookSeconds: Entry(help: "How long hooks ran, by service and phase.", buckets: hook)
            case .loadBalancerCalls: Entry(help: "Load balancer API calls (each retry counts), by operation and result code (ok or the error's code).")
            case .loadBalancerCallSeconds: Entry(help: "How long load balancer API calls took, by operation.", buckets: call)
            case .awsBudgetWaitSeconds: Entry(help: "How long AWS calls waited for a token of rollgate's own API budget, by kind (describe, change).", buckets: call)
            }
        }
        entries[Name.httpRequests] = Entry(help: "HTTP requests answered, by route, method and status.")
        entries[Name.httpSeconds] = Entry(help: "Time to answer HTTP requests (to the first byte of a stream), by route.", buckets: request)
        entries[Name.failedWrites] = Entry(help: "Database writes that failed and were retried.")
        entries[Name.notifications] = Entry(help: "Notification delivery attempts, by destination and result (delivered, retrying, failed).")
        return entries
    }()

    enum Name {
        static let httpRequests = "rollgate_http_requests_total"
        static let httpSeconds = "rollgate_http_request_duration_seconds"
        static let notifications = "rollgate_notification_attempts_total"
        static let failedWrites = "rollgate_database_write_failures_total"
    }

    /// The handlers of the HTTP metrics, made once per route, method and status: the
    /// request path (tens of thousands a second) does not look them up in the registry.
    private struct HTTPKey: Hashable { let route: String, method: String, status: Int }
    /// Each (route, method, status)'s counter with its route's timer: one lookup per answer.
    private let httpSeries = Mutex<[HTTPKey: (CoreMetrics.Counter, CoreMetrics.Timer)]>([:])

    package func httpAnswered(route: String, method: String, status: Int, duration: Duration) {
        let key = HTTPKey(route: route, method: method, status: status)
        let factory = metrics.factory
        let (counter, timer) = httpSeries.withLock { series in
            if let known = series[key] { return known }
            let made = (CoreMetrics.Counter(label: Name.httpRequests, dimensions: [("route", route), ("method", method), ("status", "\(status)")], factory: factory),
                        CoreMetrics.Timer(label: Name.httpSeconds, dimensions: [("route", route)], factory: factory))
            series[key] = made
            return made
        }
        counter.increment()
        let (seconds, attoseconds) = duration.components
        timer.recordNanoseconds(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
    }

    package func notificationAttempted(destination: String, result: String) {
        let destination = Telemetry.label(destination: destination)
        destinationsSeen.withLock { _ = $0.insert(destination) }
        metrics.count(Name.notifications, [("destination", destination), ("result", result)])
    }

    /// One label for all of Slack's per-run reply URLs (`reply:RUN`), so runs do not add series.
    static func label(destination: String) -> String {
        destination.hasPrefix("reply:") ? "slack_reply" : destination
    }

    /// Every service's run outcomes at 0 from the start, so a rate() has a series to begin with.
    package func prepare(services: [String]) {
        for service in services {
            for status in RunStatus.allCases where status.isTerminal {
                metrics.count(RollMetrics.Name.runsFinished.rawValue, [("service", service), ("outcome", status.rawValue)], by: 0)
            }
        }
        catchUpFailedWrites(total: 0)
    }

    private let failedWritesSeen = Mutex<Int>(0)

    /// The store's count of failed writes, as a counter.
    package func catchUpFailedWrites(total: Int) {
        let delta = failedWritesSeen.withLock { seen in
            defer { seen = max(seen, total) }
            return total - seen
        }
        metrics.count(Name.failedWrites, [], by: max(0, delta))
    }

    private let destinationsSeen = Mutex<Set<String>>([])

    /// Pending notifications by destination; one that had some and has none now reads 0.
    package func setPending(_ byName: [String: Int]) {
        let counts = Dictionary(byName.map { (Telemetry.label(destination: $0.key), $0.value) }, uniquingKeysWith: +)
        let destinations = destinationsSeen.withLock { seen in
            seen.formUnion(counts.keys)
            return seen
        }
        for destination in destinations {
            set("rollgate_notifications_pending", help: "Notifications waiting to be delivered, by destination.",
                labels: [("destination", destination)], to: Double(counts[destination] ?? 0))
        }
    }

    /// A gauge read at scrape time.
    package func set(_ name: String, help: String, labels: [(String, String)] = [], to value: Double) {
        registry.makeGauge(descriptor: .named(name, help: help), labels: labels).set(value)
    }

    package func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}

/// swift-metrics' factory over the registry, naming each metric's help and buckets from the
/// catalog (the registry insists one name keeps one help text).
struct CatalogFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    private func entry(_ label: String) -> Telemetry.Entry {
        Telemetry.catalog[label] ?? Telemetry.Entry(help: label)
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: .named(label, help: entry(label).help), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: .named(label, help: entry(label).help), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        let entry = entry(label)
        guard aggregate else { return registry.makeGauge(descriptor: .named(label, help: entry.help), labels: dimensions) }
        return registry.makeValueHistogram(descriptor: .named(label, help: entry.help), labels: dimensions, buckets: entry.buckets)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: .named(label, help: entry(label).help), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let entry = entry(label)
        let buckets = (entry.buckets.isEmpty ? Telemetry.call : entry.buckets).map { Duration.seconds($0) }
        return registry.makeDurationHistogram(descriptor: .named(label, help: entry.help), labels: dimensions, buckets: buckets)
    }

    // The label sets are few and fixed by the config: nothing is ever destroyed.
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

extension MetricNameDescriptor {
    /// A whole metric name (`rollgate_runs_finished_total`) with its help text.
    static func named(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
