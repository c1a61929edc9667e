// bench/roll-time.sh's engine: rolls 6 targets on the traffic model (users through a modelled
// ALB, Sources/RolloutTesting/TrafficModel.swift) in real time, three ways side by side:
// the plain roll (wait out the deregistration delay), fast drain, and two at a time with
// fast drain. Durations are the issue's (60 s delay, 5 s hook, 5 s health pass) times SCALE,
// reported back in unscaled seconds. Not a test: a measurement to write down in BENCHMARKS.md.
import Foundation
import Logging
import Rollout
import RolloutTesting
import SQLiteStore
import SQLStore

if CommandLine.arguments.dropFirst().first == "outbound" {
    try await outboundBench(Array(CommandLine.arguments.dropFirst(2)))
    exit(0)
}

let environment = ProcessInfo.processInfo.environment
let scale = Double(environment["SCALE"] ?? "") ?? 0.1
let propagation = Double(environment["PROPAGATION"] ?? "") ?? 1
let quiet = Double(environment["QUIET"] ?? "") ?? 10
let count = Int(environment["TARGETS"] ?? "") ?? 6

func scaled(_ seconds: Double) -> Duration { .milliseconds(Int64((seconds * scale * 1000).rounded())) }

struct Result {
    var name: String
    var outOfService: [Double]
    var total: Double
    var dropped: Int
    var requests: Int
    var maxOut: Int
    var versions: Set<String>
}

func scenario(_ name: String, fastDrain: Bool, maxUnavailable: Int) async throws -> Result {
    let clock = SystemClock()
    var settings = TrafficModel.Settings()
    settings.deregistrationDelay = scaled(60)
    settings.healthPass = scaled(5)
    settings.propagation = scaled(propagation)
    settings.requestEvery = scaled(0.1)
    settings.requestTakes = scaled(0.25)
    let targets = (1...count).map { Target(id: "i-\($0)", port: 80) }
    let model = TrafficModel(targets: targets, clock: clock, settings: settings)
    var plan = ServicePlan(name: "web", pollInterval: scaled(1), drainTimeout: scaled(600), healthyTimeout: scaled(600),
                           hookTimeout: scaled(600), hooks: HookCommands(deploy: "deploy"))
    if fastDrain { plan.fastDrain = FastDrain(check: "quiet-check", quiet: scaled(quiet)) }
    plan.maxUnavailable = .count(maxUnavailable)
    // The real store, in a file of its own: the roll's writes cost what they cost in production.
    let directory = NSTemporaryDirectory() + "roll-bench-\(getpid())-\(name.hashValue.magnitude)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let store = try Store(path: directory + "/rollgate.db",
                          migrator: Migrator(directory: ProcessInfo.processInfo.environment["ROLLGATE_MIGRATIONS"] ?? "migrations"))
    _ = try store.enqueue(service: "web", version: "v2", reason: nil, requestedBy: "bench", idempotencyKey: nil, at: clock.now)
    guard let run = try store.claimNext(at: clock.now) else { fatalError("no run") }
    let executor = TrafficModelExecutor(model: model, clock: clock, deployTakes: scaled(5), window: scaled(1))
    var logger = Logger(label: "roll-bench")
    logger.logLevel = .critical
    let started = Date()
    let outcome = await Roll(run: run, plan: plan, loadBalancer: model, executor: executor, journal: store,
                             clock: clock, logger: logger).perform()
    let total = Date().timeIntervalSince(started) / scale
    guard outcome == .succeeded, let done = try store.run(run.id) else { fatalError("\(name): \(outcome)") }
    try await Task.sleep(for: scaled(2))   // the requests in flight at the end finish
    let requests = model.requests(until: clock.now)
    return Result(name: name, outOfService: done.outages.map { Double($0.milliseconds ?? 0) / 1000 / scale }, total: total,
                  dropped: requests.filter(\.failed).count, requests: requests.count, maxOut: model.maxOutOfService,
                  versions: Set(targets.compactMap { model.version(of: $0) }))
}

func seconds(_ value: Double) -> String { String(format: "%6.1f s", value) }

print("traffic model: \(count) targets, deregistration delay 60 s, deploy hook 5 s, health pass 5 s, propagation \(propagation) s,"
      + " quiet \(quiet) s, poll 1 s; a request every 100 ms lasting 250 ms; run at \(scale)x time, reported unscaled")
var results: [Result] = []
for (name, fast, batch) in [("plain roll", false, 1), ("fast drain", true, 1), ("2 at a time + fast drain", true, 2)] {
    results.append(try await scenario(name, fastDrain: fast, maxUnavailable: batch))
}
print("scenario                    out of service per target (mean / max)   total roll   max out   requests   dropped   versions")
for r in results {
    let mean = r.outOfService.reduce(0, +) / Double(r.outOfService.count)
    print("\(r.name.padding(toLength: 27, withPad: " ", startingAt: 0)) \(seconds(mean)) / \(seconds(r.outOfService.max() ?? 0))"
          + "                   \(seconds(r.total))   \(r.maxOut)         \(String(format: "%6d", r.requests))     \(r.dropped)         \(r.versions.sorted().joined(separator: ","))")
}
let plain = results[0], fast = results[1], batch = results[2]
let fastMean = fast.outOfService.reduce(0, +) / Double(fast.outOfService.count)
let plainMean = plain.outOfService.reduce(0, +) / Double(plain.outOfService.count)
print(String(format: "fast drain out of service per target: %.1f s = %.2fx the plain roll's (target <= quiet + hook + health + 2 s = %.0f s, about 0.3x)",
             fastMean, fastMean / plainMean, quiet + 5 + 5 + 2))
print(String(format: "2 at a time + fast drain, total: %.1f s = %.2fx the plain roll's (target <= 0.2x)", batch.total, batch.total / plain.total))
print("dropped requests: \(results.map { "\($0.dropped)" }.joined(separator: ", ")) (must be 0)")
