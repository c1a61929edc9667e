#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A request to put `service` at `version`, and what became of it.
public struct Run: Sendable, Equatable {
    public var id: RunID
    public var service: String
    public var version: String
    public var reason: String?
    /// Who asked: `api:<token name>`, `demo`, `cli`...
    public var requestedBy: String
    public var status: RunStatus
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    public var error: String?
    /// Where a failed run failed (the failure's code), beside `error`; also the code of the
    /// failure that started a rollback still under way.
    public var errorCode: RunFailure.Code?
    public var cancelRequested: Bool
    public var steps: [Step]
    public var kind: RunKind = .deploy
    /// Queued behind its service's lock rather than refused.
    public var waitForLock = false
    /// Interruptions (crash, kill, shutdown) since the run last finished a target.
    public var interruptions = 0
    /// Asked to end its canary bake early.
    public var promoteRequested = false
    /// Asked for as a rollback (the API's, the page's): the version it rolls back from.
    public var rollbackFrom: String?
    /// The version an automatic rollback puts back, once it began.
    public var rollbackTo: String?
    /// The failure that started the rollback (kept for the run's `error` when it resumes;
    /// its code is `errorCode`).
    public var rollbackCause: String?
    /// The newest step before the rollback began: the steps after it are the rollback's own.
    public var rollbackAfterStep: StepID?
    /// The holding this run was claimed or taken over under; set by `claimNext`/`takeOver`.
    public var lease: RunLease?
    /// The replica (rollgate process, by its `--name`) that claimed the run or took it over
    /// last; nil until it starts.
    public var rolledBy: String?

    public init(id: RunID, service: String, version: String, reason: String? = nil,
                requestedBy: String = "api", status: RunStatus = .queued, createdAt: Date,
                startedAt: Date? = nil, finishedAt: Date? = nil, error: String? = nil,
                cancelRequested: Bool = false, steps: [Step] = []) {
        self.id = id
        self.service = service
        self.version = version
        self.reason = reason
        self.requestedBy = requestedBy
        self.status = status
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.error = error
        self.cancelRequested = cancelRequested
        self.steps = steps
    }

    /// The target the run was last working on, from its newest step.
    public var currentTarget: String? { steps.last?.targetID }

    /// Each target's newest step, in the order the run first touched the targets: where each
    /// target got to.
    public var latestStepPerTarget: [Step] {
        var latest: [String: Step] = [:]
        var order: [String] = []
        for step in steps {
            if latest[step.targetID] == nil { order.append(step.targetID) }
            latest[step.targetID] = step
        }
        return order.map { latest[$0]! }
    }

    /// How long each target the run took out was out of service: from the start of its first
    /// drain step to the end of its last successful restore (`until` nil while it is still
    /// out), in the order the run took them out.
    public var outages: [TargetOutage] {
        var outages: [TargetOutage] = []
        for step in steps where step.phase == .drain {
            let target = Target(id: step.targetID, port: step.targetPort)
            if !outages.contains(where: { $0.target == target }) {
                outages.append(TargetOutage(target: target, from: step.startedAt, until: nil))
            }
        }
        for index in outages.indices {
            let back = steps.last { $0.targetID == outages[index].target.id && $0.targetPort == outages[index].target.port
                && $0.phase == .restore && $0.status == .succeeded }
            if let back, let finished = back.finishedAt, finished >= outages[index].from { outages[index].until = finished }
        }
        return outages
    }
}

/// One target's time out of service in a run.
public struct TargetOutage: Sendable, Equatable {
    public var target: Target
    public var from: Date
    /// When it was healthy again; nil while it is still out.
    public var until: Date?

    /// Whole milliseconds, as the store keeps times.
    public var milliseconds: Int64? {
        until.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) - Int64((from.timeIntervalSince1970 * 1000).rounded()) }
    }
}

/// One line of a run's log. `seq` grows across all runs; `?after=SEQ` pages by it.
public struct LogLine: Codable, Sendable, Equatable {
    public enum Stream: String, Codable, Sendable, CaseIterable {
        /// rollgate's own account of what it does.
        case system
        case stdout, stderr
    }
    public var seq: Int64
    public var runID: RunID
    public var at: Date
    public var stream: Stream
    public var targetID: String?
    public var phase: Phase?
    public var text: String

    public init(seq: Int64, runID: RunID, at: Date, stream: Stream, targetID: String?, phase: Phase?, text: String) {
        self.seq = seq
        self.runID = runID
        self.at = at
        self.stream = stream
        self.targetID = targetID
        self.phase = phase
        self.text = text
    }
}

/// A version names a build, never a path: it reaches hooks as an environment variable and
/// is often pasted into one (`/srv/releases/$ROLLGATE_VERSION`), so it is 1-128 of
/// `A-Z a-z 0-9 . _ / + -`, starts with a letter or digit (never an option, never `/`), and
/// its `/`-separated segments are never empty, `.` or `..` (no `a//b`, `./x`, `x/`, `a/../b`).
/// The one rule for the API, every webhook, Slack and the CLI.
public enum Version {
    public static let rule = "a version is 1-128 of A-Z a-z 0-9 . _ / + -, starts with a letter or digit, and has no empty, . or .. part between slashes (no leading or trailing /)"

    public static func isValid(_ version: String) -> Bool {
        let utf8 = Array(version.utf8)
        guard (1...128).contains(utf8.count), let first = utf8.first, isAlphanumeric(first) else { return false }
        guard utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_")
                                || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") }) else { return false }
        for segment in utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if segment.isEmpty || segment.elementsEqual([46]) || segment.elementsEqual([46, 46]) { return false }
        }
        return true
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
    }
}
