import Configuration
import CSpawn
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Rollout
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs hooks with `/bin/sh -c COMMAND` in a process group of their own. The ROLLGATE_*
/// values reach the hook as environment variables, never pasted into the command.
/// stdout and stderr are passed on line by line as they arrive. A hook is stopped the same
/// way wherever it is stopped: TERM to its whole process group, KILL `killGrace` later. That
/// happens past its timeout, at shutdown (task cancellation) once `shutdownAllowance`
/// has passed without the hook ending by itself, and at once when the run's holder may no
/// longer act on it (`LeaseGuard`: the lease lost, or its local deadline passed).
public struct HookRunner: HookExecutor {
    public let baseEnvironment: [String: String]
    public var killGrace: Duration = .seconds(3)
    public var shutdownAllowance: Duration

    /// Hooks run in the server's working directory with `baseEnvironment` plus ROLLGATE_*
    /// (see `HookEnvironment` for what of the server's own environment that is).
    public init(baseEnvironment: [String: String], shutdownAllowance: Duration = .seconds(60)) {
        self.baseEnvironment = baseEnvironment
        self.shutdownAllowance = shutdownAllowance
    }

    public func run(_ hook: HookInvocation, started: @escaping @Sendable (HookProcess) -> Void,
                    output: @escaping @Sendable (LogLine.Stream, [String]) -> Void) async -> HookOutcome {
        let process = ProcessGroup()
        let holding = LeaseGuard.current
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // A queue of its own gets a thread of its own; the global queues on Linux are
                // as wide as the CPUs and also run Swift's tasks, which a hook must not block.
                DispatchQueue(label: "rollgate.hook").async {
                    continuation.resume(returning: self.runBlocking(hook, process: process, holding: holding,
                                                                    started: started, output: output))
                }
            }
        } onCancel: {
            process.stopRequested()
        }
    }

    func runBlocking(_ hook: HookInvocation, process: ProcessGroup, holding: LeaseGuard? = nil, started: (HookProcess) -> Void,
                     output: @escaping @Sendable (LogLine.Stream, [String]) -> Void) -> HookOutcome {
        let pid: pid_t, outRead: Int32, errRead: Int32
        switch spawn(hook) {
        case .failure(let failure): return .couldNotStart(failure.description)
        case .success(let spawned): (pid, outRead, errRead) = spawned
        }
        process.started(pid)
        started(HookProcess(group: pid))   // the group's id is the shell's pid

        let timeoutAt = ContinuousClock.now.advanced(by: hook.timeout)
        var readers = [LineReader(fd: outRead, stream: .stdout), LineReader(fd: errRead, stream: .stderr)]
        var status: Int32 = 0
        var exited = false
        var exitedAt: ContinuousClock.Instant?
        var timedOut = false
        var killedAt: ContinuousClock.Instant?
        while true {
            let open = readers.filter { !$0.closed }
            // After the shell exits, a background child may keep the pipes open: read what
            // is there for a moment, then stop waiting for it.
            if open.isEmpty { break }
            if let exitedAt, ContinuousClock.now - exitedAt > .milliseconds(300) { break }
            var fds = open.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), 100)
            for pollResult in fds where pollResult.revents != 0 {
                if let index = readers.firstIndex(where: { $0.fd == pollResult.fd }) {
                    readers[index].readAvailable(output)
                }
            }
            if !exited, waitpid(pid, &status, WNOHANG) == pid {
                exited = true
                exitedAt = ContinuousClock.now
            }
            if !exited, killedAt == nil {
                let now = ContinuousClock.now
                if now >= timeoutAt {
                    timedOut = true
                    killedAt = now
                    kill(-pid, SIGTERM)
                } else if let stopAt = process.stopRequestedAt, now >= stopAt.advanced(by: shutdownAllowance) {
                    killedAt = now
                    kill(-pid, SIGTERM)
                } else if let holding, !holding.mayAct {
                    // Another process may hold the run now: this hook must not go on.
                    killedAt = now
                    kill(-pid, SIGTERM)
                }
            }
            if let killedAt, !exited, ContinuousClock.now - killedAt > killGrace {
                kill(-pid, SIGKILL)
            }
        }
        for index in readers.indices { readers[index].finish(output) }
        if !exited {
            if killedAt != nil { kill(-pid, SIGKILL) }
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        if timedOut {
            kill(-pid, SIGKILL)   // anything of the group still around
            return .timedOut(hook.timeout)
        }
        if killedAt != nil { kill(-pid, SIGKILL) }   // anything of the group still around
        let termination = status & 0x7f
        if termination == 0 { return .exited((status >> 8) & 0xff) }
        return .signalled(termination)
    }

    struct SpawnFailure: Error, CustomStringConvertible { let description: String }

    /// Starts `/bin/sh -c COMMAND` in a new process group with only stdin (/dev/null),
    /// stdout and stderr (pipes to us) open: every other descriptor is closed in the child.
    private func spawn(_ hook: HookInvocation) -> Result<(pid_t, Int32, Int32), SpawnFailure> {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0 else { return .failure(SpawnFailure(description: "pipe: \(String(cString: strerror(errno)))")) }
        guard pipe(&errPipe) == 0 else {
            close(outPipe[0]); close(outPipe[1])
            return .failure(SpawnFailure(description: "pipe: \(String(cString: strerror(errno)))"))
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        rollgate_spawn_close_from(&actions, 3)
        
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A new process group (so a timeout kills the hook's children too), no inherited
        // signal mask, default dispositions for the signals the server ignores or handles.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        var environment = baseEnvironment
        for (key, value) in hook.environment { environment[key] = value }
        let envStrings = environment.map { "\($0.key)=\($0.value)" }.sorted()
        let argv = ["/bin/sh", "-c", hook.command]

        var pid: pid_t = 0
        let spawned = withCStrings(argv) { argvPointers in
            withCStrings(envStrings) { envPointers in
                posix_spawn(&pid, "/bin/sh", &actions, &attributes, argvPointers, envPointers)
            }
        }
        close(outPipe[1]); close(errPipe[1])
        guard spawned == 0 else {
            close(outPipe[0]); close(errPipe[0])
            return .failure(SpawnFailure(description: "posix_spawn /bin/sh: \(String(cString: strerror(spawned)))"))
        }
        return .success((pid, outPipe[0], errPipe[0]))
    }
}

extension HookRunner {
    /// Kills the processes of group `process.group` whose environment says they belong to
    /// `run` (a recycled group id is left alone). Reads /proc; returns how many it killed.
    public func endLeftover(_ process: HookProcess, of run: RunID) -> Int {
        let marker = Array("ROLLGATE_RUN_ID=\(run)".utf8) + [0]
        var members: [Int32] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                  let stat = ProcStat.read(pid), HookRunner.processGroup(fromStat: stat) == process.group,
                  let environ = FileManager.default.contents(atPath: "/proc/\(entry)/environ"),
                  ([0] + [UInt8](environ)).firstRange(of: [0] + marker) != nil else { continue }
            members.append(pid)
        }
        // The hook's shell first: killed after its child, it would go on with its script.
        members.sort { a, b in (a == process.group ? 0 : 1, a) < (b == process.group ? 0 : 1, b) }
        return members.filter { kill($0, SIGKILL) == 0 }.count
    }

    /// Field 5 of /proc/PID/stat: the process group.
    static func processGroup(fromStat stat: [UInt8]) -> Int32? {
        ProcStat.field(5, of: stat).flatMap { Int32($0) }
    }
}

/// The hook's process group and when a stop was asked for (shutdown), shared between the
/// cancellation handler and the thread that runs the hook.
final class ProcessGroup: Sendable {
    private let state = Mutex<(pid: pid_t, stopRequestedAt: ContinuousClock.Instant?)>((0, nil))

    func started(_ pid: pid_t) {
        state.withLock { $0.pid = pid }
    }

    func stopRequested() {
        state.withLock { state in
            if state.stopRequestedAt == nil { state.stopRequestedAt = ContinuousClock.now }
        }
    }

    var stopRequestedAt: ContinuousClock.Instant? { state.withLock { $0.stopRequestedAt } }
}

/// Splits one pipe's bytes into lines; a line longer than 16 KiB is passed on in pieces.
struct LineReader {
    let fd: Int32
    let stream: LogLine.Stream
    var buffer: [UInt8] = []
    var closed = false
    static let maxLine = 16 << 10

    /// Reads what the pipe holds and passes on its complete lines, all at once.
    mutating func readAvailable(_ output: (LogLine.Stream, [String]) -> Void) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n <= 0 {
            if n == 0 || (errno != EINTR && errno != EAGAIN) { closed = true; close(fd) }
            return
        }
        buffer.append(contentsOf: chunk[0..<n])
        // Lines are cut where they end; what was passed on is dropped once, after the scan
        // (dropping each line as it goes moved the rest of the buffer every line).
        var lines: [String] = []
        var start = 0
        var index = 0
        while index < buffer.count {
            if buffer[index] == 10 {
                lines.append(LineReader.line(buffer[start..<index]))
                start = index + 1
            } else if index - start + 1 >= LineReader.maxLine {
                lines.append(LineReader.line(buffer[start...index]))
                start = index + 1
            }
            index += 1
        }
        if start > 0 { buffer.removeFirst(start) }
        if !lines.isEmpty { output(stream, lines) }
    }

    mutating func finish(_ output: (LogLine.Stream, [String]) -> Void) {
        if !buffer.isEmpty { output(stream, [LineReader.line(buffer[...])]); buffer = [] }
        if !closed { closed = true; close(fd) }
    }

    private static func line(_ bytes: ArraySlice<UInt8>) -> String {
        var line = String(decoding: bytes, as: UTF8.self)
        if line.hasSuffix("\r") { line.removeLast() }
        return line
    }
}

/// NUL-terminated C strings for argv/envp, alive for the duration of `body`.
func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}
