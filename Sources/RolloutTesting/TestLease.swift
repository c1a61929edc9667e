import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension LeaseOwner {
    /// The owner tests act as unless they say otherwise.
    public static let test = LeaseOwner(host: "test", pid: 1, start: 1)
}

/// Liveness as a test says: the owners it lists are gone.
public struct StubLiveness: LivenessProbe {
    public let gone: Set<LeaseOwner>
    public init(gone: Set<LeaseOwner> = []) { self.gone = gone }
    public func isGone(_ owner: LeaseOwner) -> Bool { gone.contains(owner) }
}

extension BlockingRunQueue {
    /// Claims as `LeaseOwner.test`, leased for 15 s from `now`.
    public func claimNext(at now: Date) throws -> Run? {
        try claimNext(owner: .test, lease: .seconds(15), at: now)
    }
}
