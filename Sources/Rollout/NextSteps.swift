/// What to do after a run that failed or was cancelled, as commands that work when pasted:
/// put back each target it left out and is still out (or forget it, if the instance is gone),
/// and put the last good version back on the targets a failed deploy reached (deploy it again:
/// `rollback` would go one version further back). The page, the text page, the API's run and
/// the CLI all say these.
public enum NextStep: Sendable, Equatable {
    case restore(target: String)
    case deployAgain(version: String)

    /// Whether `run` can have next steps at all (so its service need not be read otherwise).
    public static func mayFollow(_ run: Run) -> Bool { run.status == .failed || run.status == .cancelled }

    /// The steps for `run`, given its service's summary now (left-out targets, last good version).
    public static func after(_ run: Run, in summary: ServiceSummary) -> [NextStep] {
        guard mayFollow(run) else { return [] }
        var steps = summary.leftOut.filter { $0.runID == run.id }.map { NextStep.restore(target: $0.target.id) }
        if case .deploy = run.kind, run.status == .failed, run.rollbackTo == nil, let lastGood = summary.lastGoodVersion, lastGood != run.version {
            steps.append(.deployAgain(version: lastGood))
        }
        return steps
    }

    /// The command to paste.
    public func command(service: String) -> String {
        switch self {
        case .restore(let target): return "rollgate restore \(service) \(target)"
        case .deployAgain(let version): return "rollgate deploy \(service) \(version)"
        }
    }

    /// The step in a sentence, with its command.
    public func text(service: String) -> String {
        switch self {
        case .restore(let target):
            return "\(target) is still out of the load balancer: fix it, then `\(command(service: service))`"
                + " (or `rollgate forget \(service) \(target)` if it is gone for good)"
        case .deployAgain(let version):
            return "`\(command(service: service))` puts \(version), the last good version, back on every target"
        }
    }
}
