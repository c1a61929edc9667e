import Foundation
import Synchronization
import Testing
@testable import Rollgate
import Rollout

/// Collects a hook's lines as they arrive.
final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ stream: LogLine.Stream, _ text: String) { lines.withLock { $0.append("\(stream.rawValue): \(text)") } }
    var all: [String] { lines.withLock { $0 } }
}

@Suite struct HookRunnerTests {
    let runner = HookRunner(baseEnvironment: ["PATH": "/usr/bin:/bin", "FROM_SERVER": "kept"])

    func hook(_ command: String, timeout: Duration = .seconds(10), environment: [String: String] = [:]) -> HookInvocation {
        HookInvocation(phase: .deploy, command: command, environment: environment, timeout: timeout)
    }

    @Test func valuesArriveAsVariablesNeverPastedIntoTheCommand() async {
        let lines = Lines()
        let hostile = "v1\"; echo INJECTED; \"$(echo INJECTED2)`echo INJECTED3`"
        let outcome = await runner.run(hook(#"printf '%s\n' "$ROLLGATE_VERSION" "$FROM_SERVER" "$ROLLGATE_PHASE""#,
                                            environment: ["ROLLGATE_VERSION": hostile, "ROLLGATE_PHASE": "deploy"]), output: lines.add)
        #expect(outcome == .exited(0))
        #expect(lines.all == ["stdout: \(hostile)", "stdout: kept", "stdout: deploy"])
    }

    @Test func stdoutAndStderrAreSplitIntoLinesAndTheExitCodeKept() async {
        let lines = Lines()
        let outcome = await runner.run(hook("echo one; echo two >&2; printf 'no newline at end'; exit 7"), output: lines.add)
        #expect(outcome == .exited(7))
        #expect(!outcome.succeeded)
        #expect(Set(lines.all) == ["stdout: one", "stderr: two", "stdout: no newline at end"])
    }

    @Test func linesAreDeliveredAsTheyArriveNotAtTheEnd() async {
        let lines = Lines()
        let seenEarly = Mutex(false)
        let outcome = await runner.run(hook("echo first; sleep 1; echo second")) { stream, text in
            lines.add(stream, text)
            if text == "first" {
                // The hook is still running (sleeping) when its first line arrives.
                seenEarly.withLock { $0 = true }
            }
        }
        #expect(outcome == .exited(0))
        #expect(seenEarly.withLock { $0 })
        #expect(lines.all == ["stdout: first", "stdout: second"])
    }

    @Test func aTimeoutKillsTheWholeProcessGroup() async throws {
        let directory = TempDirectory()
        let pidFile = directory.path + "/child.pid"
        let lines = Lines()
        // The shell starts a grandchild that would outlive it, then waits.
        let outcome = await runner.run(hook("sleep 300 & echo $! > \(pidFile); echo started; wait", timeout: .milliseconds(500)),
                                       output: lines.add)
        #expect(outcome == .timedOut(.milliseconds(500)))
        #expect(lines.all == ["stdout: started"], "lines printed before the kill are kept")
        let pid = try #require(Int32(String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(try await eventually(within: .seconds(5)) { kill(pid, 0) != 0 }, "the grandchild was killed with its group")
    }

    @Test func aBackgroundedDaemonDoesNotHoldTheHookOpen() async {
        // A deploy hook that starts the new app in the background keeps our pipe open; the
        // hook still ends when the shell exits.
        let outcome = await runner.run(hook("sleep 30 & echo started"), output: { _, _ in })
        #expect(outcome == .exited(0))
    }

    @Test func aKilledHookReportsTheSignal() async {
        let outcome = await runner.run(hook("kill -9 $$"), output: { _, _ in })
        #expect(outcome == .signalled(9))
    }

    @Test func cancellingTheTaskStopsTheHook() async {
        let task = Task { await runner.run(hook("sleep 30", timeout: .seconds(60)), output: { _, _ in }) }
        try? await Task.sleep(for: .milliseconds(200))
        task.cancel()
        let outcome = await task.value
        #expect(outcome == .signalled(15))
    }

    @Test func veryLongLinesArriveInPieces() async {
        let lines = Lines()
        let outcome = await runner.run(hook("head -c 40000 /dev/zero | tr '\\0' 'x'; echo"), output: lines.add)
        #expect(outcome == .exited(0))
        #expect(lines.all.map(\.count) == ["stdout: ".count + 16384, "stdout: ".count + 16384, "stdout: ".count + 40000 - 32768])
    }
}
