import Rollout
import Synchronization

/// Runs no process: records each invocation, prints scripted output and answers a scripted outcome.
public final class RecordingExecutor: HookExecutor {
    private let invocations = Mutex<[HookInvocation]>([])
    let outcome: @Sendable (HookInvocation) -> HookOutcome
    let output: @Sendable (HookInvocation) -> [String]
    /// Called as each hook starts (e.g. to look at the load balancer at that moment).
    let onRun: @Sendable (HookInvocation) async -> Void

    public init(outcome: @escaping @Sendable (HookInvocation) -> HookOutcome = { _ in .exited(0) },
                output: @escaping @Sendable (HookInvocation) -> [String] = { ["\($0.phase.rawValue) on \($0.environment["ROLLGATE_TARGET_ID"] ?? "?")"] },
                onRun: @escaping @Sendable (HookInvocation) async -> Void = { _ in }) {
        self.outcome = outcome
        self.output = output
        self.onRun = onRun
    }

    public var recorded: [HookInvocation] { invocations.withLock { $0 } }

    private let leftovers = Mutex<[(HookProcess, RunID)]>([])

    /// What `endLeftover` was asked to end.
    public var endedLeftovers: [(HookProcess, RunID)] { leftovers.withLock { $0 } }

    public func endLeftover(_ process: HookProcess, of run: RunID) -> Int {
        leftovers.withLock { $0.append((process, run)) }
        return 1
    }

    public func run(_ hook: HookInvocation, started: @escaping @Sendable (HookProcess) -> Void,
                    output emit: @escaping @Sendable (LogLine.Stream, [String]) -> Void) async -> HookOutcome {
        let count = invocations.withLock { $0.append(hook); return $0.count }
        started(HookProcess(group: Int32(1000 + count)))
        await onRun(hook)
        let lines = output(hook)
        if !lines.isEmpty { emit(.stdout, lines) }
        // As the real runner: a hook still running at shutdown is ended with TERM.
        if Task.isCancelled { return .signalled(15) }
        return outcome(hook)
    }
}
