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

/// Server-Sent Events: a run's log as it is written, and every run's changes.
extension API {
    /// `GET /api/v1/events`: every run change from the event log (`queued`, `started`,
    /// `target_done`, `target_left_out`, `succeeded`, `failed`, `cancelled`) as
    /// `id: SEQ` / `event: run.KIND` / `data: {seq, run_id, service, target_id, detail, at}`,
    /// from `Last-Event-ID` (or `?after=`) on, else from now; a comment every 15 s while quiet.
    func events(_ request: HTTPRequest) throws -> HTTPResponse {
        var after = try store.lastEventSeq()
        for text in [request.query["after"], request.header("last-event-id")].compactMap({ $0 }) {
            guard let value = Int64(text), value >= 0 else {
                throw Refusal(status: 400, code: "invalid_after", message: "after and Last-Event-ID are event sequence numbers")
            }
            after = value
        }
        let stream = HTTPStream()
        var response = HTTPResponse(status: 200, headers: [("Content-Type", "text/event-stream; charset=utf-8"),
                                                           ("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")])
        response.stream = stream
        let store = self.store, streams = self.streams, start = after
        streams.opened()
        Task.detached {
            defer { streams.closed() }
            stream.write(Array(": run events\n\n".utf8))
            var cursor = start
            var quietSince = ContinuousClock.now
            while !stream.isClosed {
                let events = (try? store.events(after: cursor, limit: 500)) ?? []
                for event in events {
                    let data = JSONWriter.bytes { w in
                        w.object { w in
                            w.key("seq"); w.int(event.seq)
                            w.key("run_id"); w.int(event.runID)
                            w.key("service"); w.string(event.service)
                            w.key("event"); w.string(event.event.rawValue)
                            w.key("target_id"); w.string(event.targetID)
                            w.key("detail"); w.string(event.detail)
                            w.key("at"); w.time(event.at)
                        }
                    }
                    stream.write(Array("id: \(event.seq)\nevent: run.\(event.event.rawValue)\ndata: ".utf8) + data + Array("\n\n".utf8))
                    cursor = event.seq
                }
                if !events.isEmpty { quietSince = ContinuousClock.now; continue }
                if ContinuousClock.now - quietSince >= .seconds(15) {
                    stream.write(Array(": heartbeat\n\n".utf8))
                    quietSince = ContinuousClock.now
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        return response
    }

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
