@testable import Configuration
@testable import HTTPAPI
@testable import Hooks
@testable import Integrations
@testable import WireFormat
import Foundation
import Synchronization
import Testing
import HTTPTesting
@testable import RollgateServer
import Rollout
import RolloutTesting

/// Collects a hook's lines as they arrive.
final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ stream: LogLine.Stream, _ texts: [String]) { lines.withLock { $0.append(contentsOf: texts.map { "\(stream.rawValue): \($0)" }) } }
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

    /// A chatty hook's lines come a read at a time (one call, one lock in the run's log, for
    /// many lines), every one of them, in order.
    @Test func aChattyHooksLinesComeAReadAtATimeInOrder() async {
        let calls = Mutex<[[String]]>([])
        let outcome = await runner.run(hook("seq 1 20000")) { stream, texts in
            #expect(stream == .stdout)
            calls.withLock { $0.append(texts) }
        }
        #expect(outcome == .exited(0))
        let received = calls.withLock { $0 }
        #expect(received.flatMap { $0 } == (1...20000).map(String.init))
        #expect(received.count < 200, "\(received.count) calls for 20,000 lines")
    }

    @Test func linesAreDeliveredAsTheyArriveNotAtTheEnd() async {
        let lines = Lines()
        let seenEarly = Mutex(false)
        let outcome = await runner.run(hook("echo first; sleep 1; echo second")) { stream, texts in
            lines.add(stream, texts)
            if texts == ["first"] {
                // The hook is still running (sleeping) when its first line arrives.
                seenEarly.withLock { $0 = true }
            }
        }
        #expect(outcome == .exited(0))
        #expect(seenEarly.withLock { $0 })
        #expect(lines.all == ["stdout: first", "stdout: second"])
    }

    /// Another process may hold the run now (the lease lost, or not renewed in time): the
    /// hook is stopped at once, without the shutdown allowance.
    @Test func aHookIsStoppedAtOnceWhenItsHolderMayNoLongerAct() async throws {
        let clock = ManualClock()
        let holding = LeaseGuard(terms: LeaseTerms(lease: .seconds(15)), clock: clock, askedAt: clock.uptime)
        let runner = HookRunner(baseEnvironment: ProcessInfo.processInfo.environment, shutdownAllowance: .seconds(3600))
        let lines = Lines()
        let hook = HookInvocation(phase: .deploy, command: "echo started; sleep 600", environment: [:], timeout: .seconds(600))
        let running = Task { await LeaseGuard.$current.withValue(holding) { await runner.run(hook) { lines.add($0, $1) } } }
        #expect(try await eventually(within: .seconds(30)) { lines.all.contains("stdout: started") })
        holding.lose()
        #expect(await running.value == .signalled(SIGTERM), "TERM at once, not after the hook's timeout or a shutdown allowance")
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

    @Test func atShutdownAHookGetsItsAllowanceThenTerm() async {
        // Shutdown is task cancellation: the hook may finish within the allowance...
        let patient = HookRunner(baseEnvironment: ["PATH": "/usr/bin:/bin"], shutdownAllowance: .seconds(30))
        let finishing = Task { await patient.run(hook("sleep 0.5; echo done", timeout: .seconds(60)), output: { _, _ in }) }
        try? await Task.sleep(for: .milliseconds(100))
        finishing.cancel()
        #expect(await finishing.value == .exited(0), "a hook that ends within the allowance is not killed")
        // ...and is sent TERM once the allowance has passed.
        let quick = HookRunner(baseEnvironment: ["PATH": "/usr/bin:/bin"], shutdownAllowance: .milliseconds(200))
        let task = Task { await quick.run(hook("sleep 30", timeout: .seconds(60)), output: { _, _ in }) }
        try? await Task.sleep(for: .milliseconds(200))
        task.cancel()
        #expect(await task.value == .signalled(15))
    }

    @Test func aHookThatIgnoresTermIsKilledAfterTheGrace() async throws {
        var stubborn = HookRunner(baseEnvironment: ["PATH": "/usr/bin:/bin"], shutdownAllowance: .milliseconds(100))
        stubborn.killGrace = .milliseconds(500)
        let started = ContinuousClock.now
        let task = Task {
            await stubborn.run(hook("trap '' TERM; echo ready; while :; do sleep 0.1; done", timeout: .seconds(60)), output: { _, _ in })
        }
        try? await Task.sleep(for: .milliseconds(300))
        task.cancel()
        #expect(await task.value == .signalled(9), "TERM ignored: KILL after the grace")
        #expect(ContinuousClock.now - started < .seconds(30), "not the hook's 60 s timeout")
    }

    @Test func leftoversOfARunAreKilledAndOthersLeftAlone() async throws {
        let group = Mutex<HookProcess?>(nil)
        let task = Task {
            await runner.run(hook("sleep 30 & sleep 30; echo never", timeout: .seconds(60), environment: ["ROLLGATE_RUN_ID": "77"]),
                             started: { process in group.withLock { $0 = process } }, output: { _, _ in })
        }
        #expect(try await eventually(within: .seconds(10)) { group.withLock { $0 } != nil })
        let process = try #require(group.withLock { $0 })
        #expect(runner.endLeftover(process, of: 78) == 0, "another run's id: nothing is touched")
        #expect(runner.endLeftover(process, of: 7) == 0, "a prefix of the id is not the id")
        #expect(runner.endLeftover(process, of: 77) >= 2, "the shell and its background child")
        #expect(await task.value == .signalled(9))
        #expect(runner.endLeftover(process, of: 77) == 0, "nothing left")
    }

    @Test func aHookInheritsNoDescriptorButItsOwn() async throws {
        // A long hook is running and the test process has sockets and pipes of other tests
        // open: a hook started meanwhile holds none of them (a kept pipe would keep its
        // reader waiting; a kept listening socket would keep the port).
        let long = Task { await runner.run(hook("sleep 5", timeout: .seconds(30)), output: { _, _ in }) }
        try await Task.sleep(for: .milliseconds(100))
        let lines = Lines()
        let short = await runner.run(hook("ls -l /proc/self/fd"), output: lines.add)
        #expect(short == .exited(0))
        // ls (exec'd from the hook's shell) holds stdin (/dev/null), stdout and stderr (the
        // hook's pipes) and the directory it is reading, nothing else.
        let descriptors = lines.all.compactMap { line -> String? in
            guard let arrow = line.range(of: " -> ") else { return nil }
            let number = line[..<arrow.lowerBound].split(separator: " ").last ?? ""
            return "\(number) \(line[arrow.upperBound...])"
        }
        let others = descriptors.filter { !["0", "1", "2"].contains($0.split(separator: " ")[0]) }
        #expect(descriptors.first == "0 /dev/null", "\(descriptors)")
        #expect(others.count == 1 && others[0].hasSuffix("/fd"), "\(descriptors)")
        long.cancel()
        _ = await long.value
    }

    @Test func theProcessGroupIsReadFromProcStat() {
        #expect(HookRunner.processGroup(fromStat: Array("123 (sh) S 1 456 456 0 -1".utf8)) == 456)
        #expect(HookRunner.processGroup(fromStat: Array("123 (a b) c) S 1 789 789".utf8)) == 789)
        #expect(HookRunner.processGroup(fromStat: Array("garbage".utf8)) == nil)
    }

    @Test func veryLongLinesArriveInPieces() async {
        let lines = Lines()
        let outcome = await runner.run(hook("head -c 40000 /dev/zero | tr '\\0' 'x'; echo"), output: lines.add)
        #expect(outcome == .exited(0))
        #expect(lines.all.map(\.count) == ["stdout: ".count + 16384, "stdout: ".count + 16384, "stdout: ".count + 40000 - 32768])
    }

    @Test func linesAreCutWhereTheyEndAndOverlongOnesIn16KiBPieces() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let text = "a\nbb\r\n" + String(repeating: "x", count: 40_000) + "\nlast"
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fds[1], $0.baseAddress!, min($0.count, 4096)) }
            written += n
        }
        close(fds[1])
        var reader = LineReader(fd: fds[0], stream: .stdout)
        var lines: [String] = []
        while !reader.closed { reader.readAvailable { lines.append(contentsOf: $1) } }
        reader.finish { lines.append(contentsOf: $1) }
        #expect(lines.map(\.count) == [1, 2, 16_384, 16_384, 7_232, 4])
        #expect(lines[0] == "a" && lines[1] == "bb" && lines.last == "last")
    }
}

/// examples/idle-check-spring-boot.sh against a stand-in for Spring Boot's Actuator (Python's
/// http.server serving the two metrics as files): busy while requests are in flight or were
/// finished since the check before, idle otherwise.
@Suite struct IdleCheckExampleTests {
    let directory = TempDirectory()

    func metric(_ name: String, _ statistic: String, _ value: Double) throws {
        let folder = directory.path + "/actuator/metrics"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        _ = directory.write("actuator/metrics/\(name)",
                            #"{"name":"\#(name)","measurements":[{"statistic":"\#(statistic)","value":\#(value)}],"availableTags":[]}"#)
    }

    @Test func theCheckPassesOnlyWhenNothingIsInFlightOrFinishedSinceTheLastCheck() async throws {
        try metric("http.server.requests", "COUNT", 120)
        try metric("http.server.requests.active", "ACTIVE_TASKS", 0)
        let port = try await freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", directory.path, "\(port)"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        let client = HTTPClient(port: port, timeoutSeconds: 2)
        #expect(try await eventually(within: .seconds(20)) { (try? await client.request("GET", "/actuator/metrics/http.server.requests"))?.status == 200 })
        let check = { () async throws -> (Int32, String) in
            try await runToEnd("/usr/bin/env", ["ROLLGATE_TARGET_HOST=127.0.0.1", "MANAGEMENT_PORT=\(port)", "TMPDIR=\(self.directory.path)",
                                                "ROLLGATE_TARGET_ID=i-1", "sh", repositoryRoot + "/examples/idle-check-spring-boot.sh"])
        }
        #expect(try await check().0 == 1, "the first check has nothing to compare with")
        let (idle, said) = try await check()
        #expect(idle == 0 && said.contains("idle"), "\(said)")
        try metric("http.server.requests", "COUNT", 121)
        #expect(try await check().1.contains("requests finished since the last check (120.0 -> 121.0)"))
        try metric("http.server.requests.active", "ACTIVE_TASKS", 2)
        #expect(try await check().1.contains("2.0 request(s) in flight"))
        try metric("http.server.requests.active", "ACTIVE_TASKS", 0)
        #expect(try await check().0 == 0)
    }
}
