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

/// Runs hook commands. The real one forks `/bin/sh -c`; tests record invocations.
public protocol HookExecutor: Sendable {
    /// `output` gets each line of stdout and stderr as it arrives.
    func run(_ hook: HookInvocation,
             output: @escaping @Sendable (LogLine.Stream, String) -> Void) async -> HookOutcome
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
