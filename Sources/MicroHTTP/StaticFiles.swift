#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Serves files under one root directory. A path that leaves the root (`..`, encoded or
/// not, absolute, NUL) is refused before the file system is touched.
public struct StaticFiles: Sendable {
    public let root: String

    public init(root: String) { self.root = root.hasSuffix("/") ? String(root.dropLast()) : root }

    /// The file's bytes and content type, or nil when there is no such file.
    /// Throws `StaticFiles.Refused` for a path that tries to leave the root.
    public func load(_ relativePath: String) throws -> (bytes: [UInt8], contentType: String)? {
        let path = relativePath.isEmpty ? "index.html" : relativePath
        guard let safe = StaticFiles.sanitize(path) else { throw Refused(path: relativePath) }
        let full = root + "/" + safe
        // A directory reads as nil (EISDIR), like a missing file.
        guard let data = FileManager.default.contents(atPath: full) else { return nil }
        return ([UInt8](data), StaticFiles.contentType(for: safe))
    }

    public struct Refused: Error { public let path: String }

    /// Returns the path with every segment checked, or nil if any segment could escape.
    static func sanitize(_ path: String) -> String? {
        if path.contains("\0") || path.contains("\\") || path.hasPrefix("/") { return nil }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        for segment in segments {
            if segment == ".." || segment == "." || segment.isEmpty { return nil }
            if segment.hasPrefix(".") { return nil }   // no dotfiles
            if segment.contains("%") { return nil }    // MHD decoded once already; refuse double encoding
        }
        return path
    }

    static func contentType(for path: String) -> String {
        switch path.split(separator: ".").last.map(String.init) ?? "" {
        case "html": return "text/html; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "js": return "text/javascript; charset=utf-8"
        case "json": return "application/json"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "ico": return "image/x-icon"
        case "txt": return "text/plain; charset=utf-8"
        default: return "application/octet-stream"
        }
    }
}
