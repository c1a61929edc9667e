import MicroHTTP
import Rollout
import SQLiteStore
import Synchronization

/// How many live streams are open (for /metrics).
final class StreamCount: Sendable {
    private let count = Atomic<Int>(0)
    func opened() { count.add(1, ordering: .relaxed) }
    func closed() { count.subtract(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// Server-Sent Events: a run's log as it is written.
extension API {
    /// `GET /api/v1/runs/{id}/logs` with `Accept: text/event-stream`: the stored lines after
    /// `after`, then new ones as they are written, each as `id: SEQ` / `event: line` /
    /// `data: {line}`; a comment every 15 s while quiet (so a client that went away is
    /// noticed); `event: end` with the run's status when it has ended, then the stream closes.
    func logStream(of run: RunID, after: Int64) -> HTTPResponse {
        let stream = HTTPStream()
        var response = HTTPResponse(status: 200, headers: [("Content-Type", "text/event-stream; charset=utf-8"),
                                                           ("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")])
        response.stream = stream
        let store = self.store, streams = self.streams, logger = self.logger
        streams.opened()
        Task.detached {
            defer { streams.closed() }
            stream.write(Array(": run \(run) log\n\n".utf8))
            var cursor = after
            var quietSince = ContinuousClock.now
            while !stream.isClosed {
                do {
                    let lines = try store.logs(run: run, after: cursor, limit: 500)
                    for line in lines {
                        stream.write(Array("id: \(line.seq)\nevent: line\ndata: ".utf8) + JSONWriter.bytes { $0.logLine(line) } + Array("\n\n".utf8))
                        cursor = line.seq
                    }
                    if !lines.isEmpty {
                        quietSince = ContinuousClock.now
                        continue
                    }
                    // Ended, and nothing written after the last read: the stream ends too.
                    if let status = try store.run(run)?.status, status.isTerminal,
                       try store.logs(run: run, after: cursor, limit: 1).isEmpty {
                        stream.write(Array("event: end\ndata: {\"status\":\"\(status.rawValue)\"}\n\n".utf8))
                        stream.finish()
                        return
                    }
                } catch {
                    logger.warning("log stream: cannot read the run's log", metadata: ["run.id": "\(run)", "error": "\(error)"])
                }
                if ContinuousClock.now - quietSince >= .seconds(15) {
                    stream.write(Array(": heartbeat\n\n".utf8))
                    quietSince = ContinuousClock.now
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        return response
    }
}
