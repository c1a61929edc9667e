/// A run's life. `queued` and `running` are the only states that move; the SQL CHECK in
/// migrations/0001 lists the same values.
public enum RunStatus: String, Codable, Sendable, CaseIterable {
    case queued, running, succeeded, failed, cancelled, superseded

    public var isTerminal: Bool { self != .queued && self != .running }
}

public enum RunEvent: String, Sendable, CaseIterable {
    /// A worker took the run.
    case start
    /// Every target was rolled.
    case succeed
    /// A step failed, or the run could not be carried on (interrupted, unknown service).
    case fail
    /// Cancelled by a user: from the queue at once, from a roll after the target in hand is back.
    case cancel
    /// A newer deploy of the same service arrived while this one was still queued.
    case supersede
}

public struct InvalidTransition: Error, CustomStringConvertible, Equatable {
    public let from: String
    public let event: String
    public var description: String { "cannot \(event) a run that is \(from)" }
}

extension RunStatus {
    /// The one transition function; every status change goes through it.
    public func applying(_ event: RunEvent) throws -> RunStatus {
        switch (self, event) {
        case (.queued, .start): return .running
        case (.queued, .supersede): return .superseded
        case (.queued, .cancel): return .cancelled
        case (.queued, .fail): return .failed
        case (.running, .succeed): return .succeeded
        case (.running, .fail): return .failed
        case (.running, .cancel): return .cancelled
        default: throw InvalidTransition(from: rawValue, event: event.rawValue)
        }
    }
}
