/// A hook command to run for one target in one phase.
public struct HookInvocation: Sendable, Equatable {
    public var phase: Phase
    public var command: String
    /// The ROLLGATE_* variables; the executor adds them to its own environment.
    public var environment: [String: String]
    public var timeout: Duration

    public init(phase: Phase, command: String, environment: [String: String], timeout: Duration) {
        self.phase = phase
        self.command = command
        self.environment = environment
        self.timeout = timeout
    }
}

public enum HookOutcome: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)
    /// Ran past its timeout; its process group was killed.
    case timedOut(Duration)
    case couldNotStart(String)

    public var succeeded: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let code): return "exit \(code)"
        case .signalled(let signal): return "killed by signal \(signal)"
        case .timedOut(let limit): return "timed out after \(limit.humanText) (process group killed)"
        case .couldNotStart(let why): return "could not start: \(why)"
        }
    }
}

/// The process group a hook runs in: recorded before the hook can do anything, so a
/// restart after a crash can end what the dead process left running.
public struct HookProcess: Sendable, Equatable {
    public let group: Int32
    public init(group: Int32) { self.group = group }
}

/// Runs hook commands. The real one forks `/bin/sh -c`; tests record invocations.
public protocol HookExecutor: Sendable {
    /// `started` is called once the hook's process group exists, before the wait;
    /// `output` gets the lines of stdout and stderr as they arrive, in order, each call the
    /// complete lines of one read (a chatty hook's lines go to the log a read at a time, not
    /// a lock and a call per line).
    func run(_ hook: HookInvocation, started: @escaping @Sendable (HookProcess) -> Void,
             output: @escaping @Sendable (LogLine.Stream, [String]) -> Void) async -> HookOutcome

    /// Kills whatever is left of a hook of `run` that an earlier rollgate started;
    /// returns how many processes it ended (0: nothing was left).
    func endLeftover(_ process: HookProcess, of run: RunID) -> Int
}

extension HookExecutor {
    public func run(_ hook: HookInvocation,
                    output: @escaping @Sendable (LogLine.Stream, [String]) -> Void) async -> HookOutcome {
        await run(hook, started: { _ in }, output: output)
    }
}

/// The commands of a service; `deploy` is required.
public struct HookCommands: Sendable, Equatable {
    public var prepare: String?
    public var deploy: String
    public var verify: String?

    public init(prepare: String? = nil, deploy: String, verify: String? = nil) {
        self.prepare = prepare
        self.deploy = deploy
        self.verify = verify
    }
}
