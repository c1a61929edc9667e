import Configuration

/// Where a version came from, for a service mapped to a GitHub repository or a GitLab project:
/// a link to the commit (a push deploys its SHA; a tag or branch name resolves the same way)
/// and to the compare view from the version it replaced. Nil for services mapped to neither.
struct VersionLinks {
    let base: String

    init?(_ service: ServiceConfig, githubAPI: String) {
        if let github = service.triggers.github {
            // GitHub Enterprise's API lives at https://HOST/api/v3; its pages at https://HOST.
            let web = githubAPI == "https://api.github.com" ? "https://github.com"
                : githubAPI.hasSuffix("/api/v3") ? String(githubAPI.dropLast("/api/v3".count)) : githubAPI
            base = "\(web)/\(VersionLinks.path(github.repository))"
        } else if let gitlab = service.triggers.gitlab {
            base = "\(gitlab.webURL ?? "https://gitlab.com")/\(VersionLinks.path(gitlab.repository))/-"
        } else {
            return nil
        }
    }

    func commit(_ version: String) -> String { "\(base)/commit/\(VersionLinks.path(version))" }

    func compare(from old: String, to new: String) -> String { "\(base)/compare/\(VersionLinks.path(old))...\(VersionLinks.path(new))" }

    /// Path segments percent-encoded but for unreserved characters and `/`.
    static func path(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.append(Character(UnicodeScalar(byte)))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%\(hex[Int(byte >> 4)])\(hex[Int(byte & 15)])"
            }
        }
        return out
    }
}
