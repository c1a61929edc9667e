import Logging

/// Takes queued runs from the durable queue and rolls them: one run at a time per service,
/// services in parallel. `wake()` after enqueueing; it also looks on its own every `tick`.
public actor Dispatcher {
    /// Builds the roll for a run, or says why the run cannot be rolled (unknown service).
    public typealias RollFactory = @Sendable (Run) -> Result<Roll, RollRefusal>

    public struct RollRefusal: Error, Sendable { public let message: String
        public init(_ message: String) { self.message = message } }

    let queue: any RunQueue
    let makeRoll: RollFactory
    let clock: any RolloutClock
    let logger: Logger
    private var active: [RunID: Task<Void, Never>] = [:]
    private var wakeContinuation: AsyncStream<Void>.Continuation?
    private var loop: Task<Void, Never>?
    private var ticker: Task<Void, Never>?
    /// Set by stop(): no run is claimed after it.
    private var stopping = false
    private var finishedWaiters: [CheckedContinuation<Void, Never>] = []

    public init(queue: any RunQueue, clock: any RolloutClock, logger: Logger, makeRoll: @escaping RollFactory) {
        self.queue = queue
        self.clock = clock
        self.logger = logger
        self.makeRoll = makeRoll
    }

    /// Starts the loop; `tick` is how often it looks without being woken (nil: only on wake).
    public func start(tick: Duration? = .seconds(1)) {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        wakeContinuation = continuation
        loop = Task { [weak self] in
            await self?.dispatch()
            for await _ in stream {
                await self?.dispatch()
            }
        }
        if let tick {
            let clock = self.clock
            ticker = Task { [weak self] in
                while !Task.isCancelled {
                    try? await clock.sleep(for: tick)
                    await self?.wake()
                }
            }
        }
        continuation.yield()
    }

    public func wake() { wakeContinuation?.yield() }

    /// Stops taking runs and cancels those in hand; they end `failed` (interrupted), naming
    /// the target each was on. Queued runs stay queued for the next start.
    public func stop() async {
        stopping = true
        wakeContinuation?.finish()
        loop?.cancel()
        ticker?.cancel()
        let tasks = Array(active.values)
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    /// Suspends until no run is active and none is claimable. For tests and shutdown.
    public func idle() async {
        dispatch()
        while !active.isEmpty {
            await withCheckedContinuation { finishedWaiters.append($0) }
            dispatch()
        }
    }

    private func dispatch() {
        while !stopping {
            let run: Run?
            do {
                run = try queue.claimNext(at: clock.now)
            } catch {
                logger.error("cannot claim a queued run", metadata: ["error": "\(error)"])
                return
            }
            guard let run else { return }
            launch(run)
        }
    }

    private func launch(_ run: Run) {
        let queue = self.queue, clock = self.clock
        switch makeRoll(run) {
        case .failure(let refusal):
            try? queue.log(run: run.id, stream: .system, target: nil, phase: nil, text: refusal.message, at: clock.now)
            finish(run.id, .fail, refusal.message)
            return
        case .success(let roll):
            active[run.id] = Task {
                let outcome = await roll.perform()
                switch outcome {
                case .succeeded: self.finish(run.id, .succeed, nil)
                case .failed(let message): self.finish(run.id, .fail, message)
                case .cancelled(let message): self.finish(run.id, .cancel, message)
                }
            }
        }
    }

    private func finish(_ id: RunID, _ event: RunEvent, _ error: String?) {
        do {
            try queue.finish(id, event, error: error, at: clock.now)
        } catch {
            logger.error("cannot record the end of a run", metadata: ["run.id": "\(id)", "error": "\(error)"])
        }
        active[id] = nil
        let waiters = finishedWaiters
        finishedWaiters = []
        for waiter in waiters { waiter.resume() }
        dispatch()
    }
}
