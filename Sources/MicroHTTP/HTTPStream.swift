import CMicroHTTPD
import Synchronization

/// A body written over time (Server-Sent Events). The handler's producer writes; the server
/// sends what is written as the client reads, and while nothing is waiting the connection is
/// suspended (no thread, no CPU). `isClosed` turns true when the client went away or the
/// stream was finished and sent; producers stop then.
public final class HTTPStream: Sendable {
    struct State {
        var buffer: [UInt8] = []
        /// How much of `buffer` was sent already (dropped on the next write or when all is sent).
        var sent = 0
        var finished = false
        var closed = false
        /// The connection, once the server sends this stream, and whether it is suspended.
        var connection: SuspendedConnection?
        var suspended = false
    }

    private let state = Mutex<State>(State())

    public init() {}

    /// Queues bytes for the client; nothing happens once the stream is closed.
    public func write(_ bytes: [UInt8]) {
        state.withLock { state in
            guard !state.closed, !state.finished else { return }
            if state.sent > 0 {
                state.buffer.removeFirst(state.sent)
                state.sent = 0
            }
            state.buffer.append(contentsOf: bytes)
            HTTPStream.wake(&state)
        }
    }

    /// No more bytes: the response ends once what is queued is sent.
    public func finish() {
        state.withLock { state in
            state.finished = true
            HTTPStream.wake(&state)
        }
    }

    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Resumes the connection if the reader suspended it: under the same lock as the
    /// suspension, so a connection that is not suspended is never resumed.
    private static func wake(_ state: inout State) {
        if state.suspended, let connection = state.connection {
            state.suspended = false
            MHD_resume_connection(connection.pointer)
        }
    }

    // MARK: - Called by the server on MHD's threads

    func attach(_ connection: OpaquePointer) {
        let handle = SuspendedConnection(pointer: connection)
        state.withLock { $0.connection = handle }
    }

    /// Copies up to `max` bytes; 0 after suspending the connection (nothing to send yet), or
    /// MHD's end-of-stream once finished and drained.
    func read(into destination: UnsafeMutablePointer<CChar>, max: Int) -> Int {
        state.withLock { state in
            if state.sent == state.buffer.count {
                if state.finished || state.closed { return rollgate_mhd_end_of_stream() }
                if let connection = state.connection, !state.suspended {
                    state.suspended = true
                    MHD_suspend_connection(connection.pointer)
                }
                return 0
            }
            let count = min(max, state.buffer.count - state.sent)
            state.buffer.withUnsafeBytes { bytes in
                UnsafeMutableRawPointer(destination).copyMemory(from: bytes.baseAddress! + state.sent, byteCount: count)
            }
            state.sent += count
            // All sent: let the storage go, so a burst (a stream's backlog) is not kept for
            // the stream's whole life; and no O(n) shift per read.
            if state.sent == state.buffer.count {
                state.buffer = []
                state.sent = 0
            }
            return count
        }
    }

    /// MHD is done with the response: sent, or the client went away.
    func close() {
        state.withLock { state in
            state.closed = true
            state.buffer = []
            state.sent = 0
            state.connection = nil
            state.suspended = false
        }
    }
}

let streamReader: MHD_ContentReaderCallback = { cls, _, buffer, max in
    guard let cls, let buffer else { return rollgate_mhd_end_of_stream() }
    return Unmanaged<HTTPStream>.fromOpaque(cls).takeUnretainedValue().read(into: buffer, max: max)
}

let streamReleased: MHD_ContentReaderFreeCallback = { cls in
    guard let cls else { return }
    let stream = Unmanaged<HTTPStream>.fromOpaque(cls).takeRetainedValue()
    stream.close()
}
