import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Signed requests seen before, by a key made from their content.
extension Store {
    /// Records `key` until `expires` and says whether this is its first sight (false: seen
    /// before and not yet expired, a replay). Expired keys are cleared on the way.
    public func firstSight(of key: String, until expires: Date, at now: Date) throws -> Bool {
        try write { db in
            try db.prepare("DELETE FROM seen_requests WHERE expires_at <= ?").run([.integer(now.milliseconds)])
            try db.prepare("INSERT INTO seen_requests (key, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING")
                .run([.text(key), .integer(expires.milliseconds)])
            return db.changes == 1
        }
    }
}
