import Configuration
import Integrations
import WireFormat
import MicroHTTP
import Rollout
import Synchronization

/// How many live streams are open (for /metrics).
final class StreamCount: Sendable {
    private let count = Atomic<Int>(0)
    func opened() { count.add(1, ordering: .relaxed) }
    func closed() { count.subtract(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// What one look for news found.
enum StreamPass {
    case wrote, quiet, ended
}

/// Server-Sent Events: a run's log as it is written, and every run's changes.
extension API {
    /// `GET /api/v1/events`: every change from the event log as `id: SEQ` / `event: NAME` /
    /// `data: {seq, run_id, service, event, target_id, phase, detail, at}`: run changes
    /// (`run.queued`, `run.started`, `run.target_done`, `run.target_left_out`, `run.succeeded`,
    /// `run.failed`, `run.cancelled`, `run.target_forgotten`), step changes (`step.started`, `step.succeeded`,
    /// `step.failed`, with the phase and the error) and target states as the load balancer
    /// reported them (`target.state`, detail `draining (Target.DeregistrationInProgress)`),
    /// from `Last-Event-ID` (or `?after=`) on, else from now; a comment every 15 s while quiet.
    func events(_ request: HTTPRequest) throws -> HTTPResponse {
        var after = try history.lastEventSeq()
        for text in [request.query["after"], request.header("last-event-id")].compactMap({ $0 }) {
            guard let value = Int64(text), value >= 0 else {
                throw Refusal(status: 400, code: "invalid_after", message: "after and Last-Event-ID are event sequence numbers")
            }
            after = value
        }
        let store = self.history, logger = self.logger
        let fetch: SharedTail.Fetch = { cursor in (try store.events(after: cursor, limit: 500).map(API.frame), nil) }
        let tail = try tails.eventLog { SharedTail(floor: try store.lastEventSeq(), freshness: tails.freshness, fetch: fetch) }
        return eventStream(opening: "run events", after: after) { stream, cursor in
            do {
                // A cursor older than the shared tail (a resume from long ago) reads the store.
                let frames = try tail.read(after: cursor)?.frames ?? fetch(cursor).frames
                for frame in frames { stream.write(frame.bytes) }
                cursor = frames.last?.seq ?? cursor
                return frames.isEmpty ? .quiet : .wrote
            } catch {
                logger.warning("event stream: cannot read the event log", metadata: ["error": "\(error)"])
                return .quiet
            }
        }
    }

    /// One change of the event log as an SSE frame.
    static func frame(_ event: RunEventRecord) -> StreamFrame {
        let data = JSONWriter.bytes { w in
            w.object { w in
                w.key("seq"); w.int(event.seq)
                w.key("run_id"); if event.runID == 0 { w.null() } else { w.int(event.runID) }
                w.key("service"); w.string(event.service)
                w.key("event"); w.string(event.event.rawValue)
                w.key("target_id"); w.string(event.targetID)
                w.key("phase"); w.string(event.phase?.rawValue)
                w.key("detail"); w.string(event.detail)
                w.key("at"); w.time(event.at)
            }
        }
        return StreamFrame(seq: event.seq, bytes: API.sse(id: event.seq, event: API.streamName(of: event.event), data: data))
    }

    /// `GET /api/v1/runs/{id}/logs` with `Accept: text/event-stream`: the stored lines after
    /// `after`, then new ones as they are written, each as `id: SEQ` / `event: line` /
    /// `data: {line}`; a comment every 15 s while quiet (so a client that went away is
    /// noticed); `event: end` with the run's status when it has ended, then the stream closes.
    /// Every stream on one run shares one reader of its log (`SharedTail`).
    func logStream(of run: RunID, after: Int64) throws -> HTTPResponse {
        let store = self.history, logger = self.logger, tails = self.tails
        let fetch: SharedTail.Fetch = { cursor in
            let lines = try store.logs(run: run, after: cursor, limit: SharedTail.keep)
            let frames = lines.map { line in
                StreamFrame(seq: line.seq, bytes: API.sse(id: line.seq, event: "line", data: JSONWriter.bytes { $0.logLine(line) }))
            }
            // Ended, and nothing written after the last read: the stream ends too.
            guard frames.isEmpty, let status = try store.run(run)?.status, status.isTerminal,
                  try store.logs(run: run, after: cursor, limit: 1).isEmpty else { return (frames, nil) }
            return ([], API.sse(id: nil, event: "end", data: Array("{\"status\":\"\(status.rawValue)\"}".utf8)))
        }
        // The tail starts with the run's last 2,000 lines: most streams start inside it.
        let tail = try tails.follow(run: run) {
            SharedTail(floor: try store.logSeq(run: run, beforeLast: SharedTail.keep), freshness: tails.freshness, fetch: fetch)
        }
        return eventStream(opening: "run \(run) log", after: after, closed: { tails.release(run: run) }) { stream, cursor in
            do {
                // A cursor older than the shared tail (the backlog) reads the store.
                let batch = try tail.read(after: cursor) ?? {
                    let direct = try fetch(cursor)
                    return SharedTail.Batch(frames: direct.frames, end: direct.end)
                }()
                for frame in batch.frames { stream.write(frame.bytes) }
                cursor = batch.frames.last?.seq ?? cursor
                if !batch.frames.isEmpty { return .wrote }
                if let end = batch.end {
                    stream.write(end)
                    return .ended
                }
            } catch {
                logger.warning("log stream: cannot read the run's log", metadata: ["run.id": "\(run)", "error": "\(error)"])
            }
            return .quiet
        }
    }

    /// A Server-Sent Events response fed by `pass`: asked again at once after it wrote, every
    /// 200 ms while quiet, with a heartbeat comment after 15 s of quiet (so a client that went
    /// away is noticed); the stream finishes when `pass` says the end or the client leaves.
    /// Counted in `rollgate_open_streams` while open.
    func eventStream(opening: String, after: Int64, closed: @escaping @Sendable () -> Void = {},
                     pass: @escaping @Sendable (HTTPStream, inout Int64) async -> StreamPass) -> HTTPResponse {
        let stream = HTTPStream()
        var response = HTTPResponse(status: 200, headers: [("Content-Type", "text/event-stream; charset=utf-8"),
                                                           ("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")])
        response.stream = stream
        let streams = self.streams
        streams.opened()
        Task.detached {
            defer {
                streams.closed()
                closed()
            }
            stream.write(Array(": \(opening)\n\n".utf8))
            var cursor = after
            var quietSince = ContinuousClock.now
            while !stream.isClosed {
                switch await pass(stream, &cursor) {
                case .ended:
                    stream.finish()
                    return
                case .wrote:
                    quietSince = ContinuousClock.now
                    continue
                case .quiet:
                    break
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

    /// The SSE event name of a change: `run.*`, `step.*` or `target.state`.
    static func streamName(of kind: RunEventKind) -> String {
        switch kind {
        case .stepStarted: return "step.started"
        case .stepSucceeded: return "step.succeeded"
        case .stepFailed: return "step.failed"
        case .targetState: return "target.state"
        default: return "run.\(kind.rawValue)"
        }
    }

    /// One event: `id:` (when given), `event:`, `data:`, a blank line.
    static func sse(id: Int64?, event: String, data: [UInt8]) -> [UInt8] {
        Array(((id.map { "id: \($0)\n" } ?? "") + "event: \(event)\ndata: ").utf8) + data + Array("\n\n".utf8)
    }
}
