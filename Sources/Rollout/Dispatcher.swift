import Logging
import Synchronization

/// Takes runs from the durable queue and rolls them: one run at a time per service,
/// services in parallel. Runs another process left `running` whose lease expired (or whose
/// owner is gone) are taken over and resumed first. `wake()` after enqueueing; it also
/// looks on its own every `tick`, renewing the leases of the runs in hand.
public actor Dispatcher {
    /// Builds the roll for a run, or says why the run cannot be rolled (unknown service).
    public typealias RollFactory = @Sendable (Run) -> Result<Roll, RunFailure>

    let queue: any RunQueue
    let makeRoll: RollFactory
    let clock: any RolloutClock
    let logger: Logger
    let owner: LeaseOwner
    let lease: LeaseTerms
    let liveness: any LivenessProbe
    let recovery: Recovery
    let durable: DurableWrite
    private var active: [RunID: Task<Void, Never>] = [:]
    /// The runs in hand and their services, readable without the actor (`/healthz` answers
    /// from it on the HTTP server's own threads).
    public nonisolated let held = HeldRuns()
    /// The holding of each run in hand and this process's view of it.
    private var holdings: [RunID: (lease: RunLease, guard: LeaseGuard)] = [:]
    private var wakeContinuation: AsyncStream<Void>.Continuation?
    private var loop: Task<Void, Never>?
    private var ticker: Task<Void, Never>?
    /// Set by stop(): no run is claimed after it.
    private var stopping = false
    private var finishedWaiters: [CheckedContinuation<Void, Never>] = []
    /// When leases were last renewed, on the monotonic clock (a wall clock set back never
    /// stops renewals).
    private var lastRenewal: Duration?
    private var dispatching = false
    private var dispatchAgain = false

    public init(queue: any RunQueue, clock: any RolloutClock, logger: Logger, owner: LeaseOwner,
                lease: LeaseTerms = LeaseTerms(), liveness: any LivenessProbe, recovery: Recovery,
                health: StoreHealth = StoreHealth(), makeRoll: @escaping RollFactory) {
        self.queue = queue
        self.clock = clock
        self.logger = logger
        self.owner = owner
        self.lease = lease
        self.liveness = liveness
        self.recovery = recovery
        // Its queue makes each call on the store's threads (`QueueOnThreads`): retries only await.
        self.durable = DurableWrite(clock: clock, health: health, logger: logger)
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
                for await _ in clock.ticks(every: tick) {
                    await self?.renewLeases()
                    await self?.wake()
                }
            }
        }
        continuation.yield()
    }

    public func wake() { wakeContinuation?.yield() }

    /// Stops taking runs and stops the rolls in hand at their next safe point: a wait is
    /// left at once, a hook is given the executor's shutdown allowance. Each stopped run
    /// stays `running` with its lease released, so the next start resumes it at once.
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
        await dispatch()
        while !active.isEmpty {
            await withCheckedContinuation { finishedWaiters.append($0) }
            await dispatch()
        }
    }

    /// The runs this dispatcher has in hand.
    public var inHand: Set<RunID> { Set(active.keys) }

    /// Extends the lease of every run in hand. A run whose lease another process took is
    /// stopped at once (fencing), without writing anything more; so is one this process could
    /// not renew within its acting window (the database unreachable, the process stopped):
    /// its guard already refuses every hook and load-balancer change.
    public func renewLeases() async {
        let uptime = clock.uptime
        if let last = lastRenewal, uptime - last < lease.renewEvery {
            stopRunsPastTheirDeadline()
            return
        }
        lastRenewal = uptime
        let queue = self.queue
        for (id, holding) in holdings {
            let asked = clock.uptime
            let duration = lease.duration
            do {
                try await queue.renewLease(run: id, lease: holding.lease, for: duration)
                holding.guard.renewed(askedAt: asked)
            } catch is LeaseLost {
                logger.error("another process took over the run; stopping it here", metadata: ["run.id": "\(id)"])
                holding.guard.lose()
                active[id]?.cancel()
            } catch {
                logger.warning("cannot renew the run's lease; the roll goes on only within its acting window",
                               metadata: ["run.id": "\(id)", "error": "\(error)", "window": "\(lease.actingWindow.humanText)"])
            }
        }
        stopRunsPastTheirDeadline()
    }

    private func stopRunsPastTheirDeadline() {
        for (id, holding) in holdings where !holding.guard.mayAct && !holding.guard.isLost {
            logger.error("cannot renew the run's lease in time; stopping it here (another process may take it over once the lease ends)",
                         metadata: ["run.id": "\(id)", "why": "\(holding.guard.refusal ?? "")"])
            holding.guard.lose()
            active[id]?.cancel()
        }
    }

    /// Every run in hand is lost (this process lost the database): nothing more is done for
    /// any of them, and their hooks are stopped at once.
    public func loseAll() {
        for (id, holding) in holdings {
            holding.guard.lose()
            active[id]?.cancel()
        }
        stopping = true
    }

    /// Takes runs over and claims queued ones; one pass at a time (a call while one runs
    /// asks for another pass after it).
    private func dispatch() async {
        if dispatching { dispatchAgain = true; return }
        dispatching = true
        defer { dispatching = false }
        repeat {
            dispatchAgain = false
            await dispatchOnce()
        } while dispatchAgain && !stopping
    }

    private func dispatchOnce() async {
        guard !stopping else { return }
        let queue = self.queue, owner = self.owner, liveness = self.liveness, lease = self.lease, clock = self.clock
        do {
            let asked = clock.uptime
            let excluding = Set(active.keys)
            let taken = try await queue.takeOver(owner: owner, lease: lease.duration, excluding: excluding, isGone: { liveness.isGone($0) })
            for run in taken where !stopping {
                logger.warning("taking over an interrupted run", metadata: ["run.id": "\(run.id)", "service": "\(run.service)"])
                launch(run, resumed: true, asked: asked)
            }
        } catch {
            logger.error("cannot look for interrupted runs", metadata: ["error": "\(error)"])
        }
        while !stopping {
            let run: Run?
            let asked = clock.uptime
            do {
                run = try await queue.claimNext(owner: owner, lease: lease.duration, at: clock.now)
            } catch {
                logger.error("cannot claim a queued run", metadata: ["error": "\(error)"])
                return
            }
            guard let run else { return }
            launch(run, resumed: false, asked: asked)
        }
    }

    private func launch(_ run: Run, resumed: Bool, asked: Duration) {
        let recovery = self.recovery, makeRoll = self.makeRoll, queue = self.queue, clock = self.clock
        guard let held = run.lease else {
            logger.critical("the store returned a claimed run without its lease; not rolling it", metadata: ["run.id": "\(run.id)"])
            return
        }
        let holding = LeaseGuard(terms: lease, clock: clock, askedAt: asked)
        holdings[run.id] = (held, holding)
        self.held.add(run.id, service: run.service)
        active[run.id] = Task { await LeaseGuard.$current.withValue(holding) {
            var run = run
            if resumed {
                let taken = run
                switch await self.durably("take over run \(run.id)", { try await recovery.takeOver(taken) }) {
                case .resume(let again)?: run = again
                case .fail(let failure)?: await self.finish(run.id, .fail, failure.message, failure.code); return
                case nil: await self.release(run.id); return
                }
            }
            switch makeRoll(run) {
            case .failure(let refusal):
                let id = run.id
                try? await queue.log(run: id, stream: .system, target: nil, phase: nil, text: refusal.message, at: clock.now)
                await self.finish(run.id, .fail, refusal.message, refusal.code)
            case .success(let roll):
                switch await roll.perform() {
                case .succeeded: await self.finish(run.id, .succeed, nil)
                case .failed(let failure): await self.finish(run.id, .fail, failure.message, failure.code)
                case .cancelled(let message): await self.finish(run.id, .cancel, message)
                case .interrupted: await self.release(run.id)
                case .leaseLost: await self.ended(run.id)
                }
            }
        } }
    }

    /// A write retried until it succeeds; nil if shutdown came first.
    private func durably<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async -> T? {
        try? await durable.perform(what, attempt: body)
    }

    /// Ends a run, retrying until the database takes it: the service stays busy meanwhile
    /// and is free again the moment the write succeeds, without a restart.
    private func finish(_ id: RunID, _ event: RunEvent, _ error: String?, _ code: RunFailure.Code? = nil) async {
        guard let holding = holdings[id], holding.guard.mayAct else { ended(id); return }
        let queue = self.queue, clock = self.clock, lease = holding.lease
        _ = await durably("end run \(id)") { try await queue.finish(id, event, error: error, code: code, lease: lease, at: clock.now) }
        ended(id)
    }

    /// Gives a run stopped at a safe point up, for the next start to resume at once.
    private func release(_ id: RunID) async {
        guard let holding = holdings[id], !holding.guard.isLost else { ended(id); return }
        let queue = self.queue, lease = holding.lease
        do { try await queue.releaseLease(run: id, lease: lease) } catch {
            logger.warning("cannot release the run's lease; the next start takes it over once it expires",
                           metadata: ["run.id": "\(id)", "error": "\(error)"])
        }
        ended(id)
    }

    private func ended(_ id: RunID) {
        active[id] = nil
        holdings[id] = nil
        held.remove(id)
        let waiters = finishedWaiters
        finishedWaiters = []
        for waiter in waiters { waiter.resume() }
        wakeContinuation?.yield()   // the loop looks for the next run
    }
}

/// The runs a dispatcher has in hand, by id, with their services.
public final class HeldRuns: Sendable {
    private let runs = Mutex<[RunID: String]>([:])
    public init() {}
    func add(_ run: RunID, service: String) { runs.withLock { $0[run] = service } }
    func remove(_ run: RunID) { _ = runs.withLock { $0.removeValue(forKey: run) } }
    /// Oldest run first.
    public var now: [(run: RunID, service: String)] { runs.withLock { $0 }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
}
