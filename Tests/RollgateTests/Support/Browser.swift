import Foundation
import Testing
import WireFormat

/// Tests that drive headless Chromium in real time over the DevTools protocol
/// (Support/browser.py): each step's `eval` value comes back in order.
protocol DrivesBrowser {}

extension DrivesBrowser {
    func browser(_ steps: [String]) async throws -> [JSONValue] {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let browser = try #require(chromium, "Chromium is missing: make test installs it (apt-get install chromium)")
        let (status, output) = try await runToEnd("/usr/bin/env", ["python3", repositoryRoot + "/Tests/RollgateTests/Support/browser.py",
                                                                  browser, "[" + steps.joined(separator: ",") + "]"], keepStandardError: false)
        let answer = JSONValue.parse(Array(output.utf8))
        try #require(status == 0, "the browser script failed: \(answer?["error"]?.string ?? output)\npage: \(answer?["page"]?.string ?? "")")
        return answer?["results"]?.array ?? []
    }

    /// A browser step, as JSON.
    func step(_ pairs: (String, JSONValue)...) -> String { JSONValue.object(pairs).text }
    func eval(_ script: String) -> String { step(("eval", .string(script))) }
    func wait(_ condition: String, timeout: Double = 30) -> String { step(("wait", .string(condition)), ("timeout", .number(timeout))) }
    func viewport(_ width: Int, dark: Bool = false) -> String {
        step(("viewport", .array([.number(Double(width)), .number(900)])), ("dark", .bool(dark)))
    }
    /// Whether the page is wider than the window (it must not be at 390 px), and what sticks out.
    var overflow: String { eval("""
        [document.documentElement.scrollWidth <= window.innerWidth,
         Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
             && !e.closest('pre, .scroll')).map(e => e.tagName + (e.id ? '#' + e.id : '')).slice(0, 5).join(' ')]
        """) }

    func fill(_ selector: String, _ value: String) -> String { step(("fill", .string(selector)), ("value", .string(value))) }
    /// Clicks what navigates and waits for the next page.
    func click(_ selector: String) -> String { step(("click", .string(selector))) }
    func goto(_ url: String) -> String { step(("goto", .string(url))) }
}
