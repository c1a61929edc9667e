import Rollout
import SQLStore

/// SQLite's own upkeep: giving a pass's space back to the file system, and backups.
extension Store {
    /// What giving a pass's space back did.
    public struct SpaceGivenBack: Sendable {
        /// One VACUUM gave it all back.
        public var rewritten = false
        /// Why the VACUUM it tried failed (the steps went on).
        public var rewriteFailure: String?
        /// Steps of incremental vacuum taken.
        public var steps = 0
        /// The file's size after.
        public var fileBytes: Int64 = 0
    }

    /// After a pass, the space it freed goes back to the file system. When most of the file
    /// is free and what is kept is small, by one VACUUM (it rewrites only what is kept: 1.9 s
    /// for 63 MB kept of a 7.7 GB file here, against hours of steps), which also makes an
    /// older database incremental. Otherwise, in a database with incremental auto_vacuum, in
    /// steps of `pagesAtOnce` free pages, each one short hold of the writer (moving kept pages
    /// from the file's end runs at about 1 MB/s here), with `pause` between them to let other
    /// writes in (false: stop). Then the write-ahead log is truncated.
    public func giveSpaceBack(work: BlockingWork?, pagesAtOnce: Int = 100, pause: @Sendable () async -> Bool) async -> SpaceGivenBack {
        var given = SpaceGivenBack()
        if let counts = try? await work.run({ try self.pageCounts() }), Store.shouldRewrite(pages: counts.pages, free: counts.free) {
            do {
                try await work.run { try self.rewrite() }
                given.rewritten = true
            } catch {
                given.rewriteFailure = "\(error)"
            }
        }
        var last = Int64.max
        while let left = try? await work.run({ try self.compactStep(pages: pagesAtOnce) }) {
            given.steps += 1
            guard left > 0, left < last, await pause() else { break }
            last = left
        }
        try? await work.run { try self.checkpoint() }
        given.fileBytes = (try? await work.run({ try self.writer.with { try $0.pragma("page_count") * $0.pragma("page_size") } })) ?? 0
        return given
    }

    /// Up to `pages` free pages given back; the free pages left, or nil in a database without
    /// incremental auto_vacuum (it keeps its size until a VACUUM).
    func compactStep(pages: Int) throws -> Int64? {
        try writer.with { db in
            guard try db.pragma("auto_vacuum") == 2 else { return nil }
            try db.execute("PRAGMA incremental_vacuum(\(max(1, pages)))")
            return try db.pragma("freelist_count")
        }
    }

    /// Pages in the file and pages free in it.
    public func pageCounts() throws -> (pages: Int64, free: Int64) {
        try writer.with { db in (try db.pragma("page_count"), try db.pragma("freelist_count")) }
    }

    /// Whether one VACUUM is the way to give the space back: most of the file free, and what
    /// is kept below `keptLimit` pages (256 MB of 4 KB pages), since it holds the writer while
    /// it runs.
    public static func shouldRewrite(pages: Int64, free: Int64, keptLimit: Int64 = 65_536) -> Bool {
        free * 2 >= pages && pages - free <= keptLimit && free >= 1_024
    }

    /// Rewrites the file (VACUUM) with incremental auto_vacuum from then on.
    public func rewrite() throws {
        try writer.with { db in
            try db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            try db.execute("VACUUM")
        }
    }

    /// A consistent copy of the database at `path`, taken while the server runs. The copy
    /// belongs to no process: whoever serves it next takes its running runs over at once.
    public static func backup(database: String, to path: String) throws {
        let source = try Connection(path: database, readOnly: true)
        try source.backup(to: path)
        let copy = try Connection(path: path)
        try copy.transaction {
            try copy.execute("DELETE FROM server_holder")
            try copy.execute("UPDATE runs SET lease_expires_at = 0 WHERE lease_expires_at IS NOT NULL")
        }
    }
}
