import ImageQueue
import Logging
import RedisClient
import ServiceLifecycle
import Synchronization

/// The claim loops of every served model, as one service: each model has its own loop, so a
/// slow model never delays another. A loop claims as many jobs as it has free slots in one
/// call, runs each in its own task, and keeps all their leases alive with one heartbeat call
/// per lease third. On graceful shutdown the loops stop claiming; jobs in flight get the grace
/// period to finish and are then released to the head of their queue.
struct ClaimLoops: Service {
    let queue: WorkerQueue
    let processor: JobProcessor
    let models: [String]
    let slotsPerModel: Int
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let currentJobs: CurrentJobs
    let logger: Logger

    func run() async throws {
        await withDiscardingTaskGroup { group in
            for model in models {
                group.addTask { await loop(model: model) }
            }
        }
    }

    private func loop(model: String) async {
        var modelLogger = logger
        modelLogger[metadataKey: "job.model"] = "\(model)"
        let logger = modelLogger
        let lane = Lane(slots: slotsPerModel)
        let keeper = Task { await keepLeases(lane, model: model, logger: logger) }
        let grace = configuration.grace
        await withGracefulShutdownHandler {
            var failures = 0
            // After an empty or full answer, the next claim goes out behind the doorbell wait.
            var waitFirst = false
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                metrics.tick(model: model)
                var free = lane.free
                if free == 0 {
                    // Every slot busy: wait for one to free up (shutdown interrupts the wait).
                    free = (try? await cancelWhenGracefulShutdown { await lane.freeSlots() }) ?? 0
                    guard free > 0 else { break }
                }
                do {
                    let lease = configuration.lease
                    let count = free
                    let batch = waitFirst
                        // Blocks inside Redis until the doorbell rings; shutdown interrupts it.
                        ? try await cancelWhenGracefulShutdown { try await queue.waitThenClaim(model: model, lease: lease, upTo: count) }
                        : try await queue.claim(model: model, lease: lease, upTo: count)
                    switch batch {
                    case .claimed(let jobs):
                        failures = 0
                        waitFirst = false
                        if Task.isShuttingDownGracefully {
                            // The shutdown began while the claim was on its way: hand the jobs
                            // back at once (the attempt does not count), none is started.
                            for job in jobs { _ = try? await queue.release(job) }
                            continue
                        }
                        for job in jobs {
                            currentJobs.add(job.id)
                            lane.start(job) { lost in
                                let outcome = await processor.process(job, leaseLost: lost)
                                currentJobs.remove(job.id)
                                return outcome
                            }
                        }
                    case .full, .empty:
                        failures = 0
                        waitFirst = true
                    }
                } catch {
                    if Task.isShuttingDownGracefully || Task.isCancelled { break }
                    failures += 1
                    if failures == 1 {
                        logger.warning("\(RedisRetry.problem(error, otherwise: "cannot reach Redis")); retrying with backoff",
                                       metadata: ["error": "\(error)"])
                    }
                    try? await Task.sleep(for: RedisRetry.pause(afterFailures: failures))
                }
            }
            logger.debug("claim loop stopped")
            await withTaskCancellationHandler {
                await lane.drained()
            } onCancel: {
                lane.cancelAll()
            }
        } onGracefulShutdown: {
            let count = lane.running
            if count > 0 {
                logger.info("shutting down: waiting for the jobs in flight", metadata: ["jobs": "\(count)", "grace_s": "\(grace.seconds)"])
            }
            Task {
                try? await Task.sleep(for: grace)
                lane.cancelAll()
            }
        }
        keeper.cancel()
        await keeper.value
    }

    /// Extends the leases of every job of the lane every third of a lease, in one call per
    /// 500 jobs. A job whose lease is lost (another worker owns it now) is stopped.
    private func keepLeases(_ lane: Lane, model: String, logger: Logger) async {
        let interval = configuration.lease / 3
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            let handles = lane.handles
            var start = 0
            while start < handles.count {
                let chunk = Array(handles[start..<min(start + 500, handles.count)])
                start += chunk.count
                do {
                    let outcomes = try await queue.heartbeat(chunk.map(\.job), lease: configuration.lease)
                    for (handle, outcome) in zip(chunk, outcomes) {
                        // A job that ended meanwhile (its completion cleared the token) is no loss.
                        if case .failure(let error) = outcome, error.code == .staleToken || error.code == .notFound,
                           lane.isRunning(handle) {
                            logger.warning("lease lost: another worker owns the job now; abandoning it",
                                           metadata: ["job.id": "\(handle.job.id)"])
                            handle.loseLease()
                        }
                    }
                } catch {
                    if Task.isCancelled { return }
                    logger.warning("heartbeat failed (\(RedisRetry.problem(error, otherwise: "Redis failed"))); retrying",
                                   metadata: ["error": "\(error.message)"])
                }
            }
        }
    }
}

/// The jobs a model's loop runs now, each in its own task, with the number of free slots and
/// ways to wait for a free slot or for the last job to end.
final class Lane: Sendable {
    /// A running job: its task, and whether its lease was lost.
    final class Handle: Sendable {
        let job: ClaimedJob
        private let lost = Atomic<Bool>(false)
        private let task = Mutex<Task<Void, Never>?>(nil)

        init(job: ClaimedJob) { self.job = job }

        /// Whether another worker owns the job now.
        var leaseLost: Bool { lost.load(ordering: .acquiring) }

        func cancel() { task.withLock { $0 }?.cancel() }

        func loseLease() {
            lost.store(true, ordering: .releasing)
            cancel()
        }

        fileprivate func set(_ made: Task<Void, Never>) { task.withLock { $0 = made } }
    }

    private struct State {
        var running: [String: Handle] = [:]
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let slots: Int
    private let state = Mutex(State())

    init(slots: Int) { self.slots = slots }

    var running: Int { state.withLock { $0.running.count } }
    var free: Int { state.withLock { slots - $0.running.count } }
    var handles: [Handle] { state.withLock { Array($0.running.values) } }

    /// Whether the job's task has not ended yet.
    func isRunning(_ handle: Handle) -> Bool { state.withLock { $0.running[handle.job.id] === handle } }

    /// Runs a job in a task of its own; `body` gets a function telling whether the job's
    /// lease was lost (its task is then cancelled).
    func start(_ job: ClaimedJob, _ body: @escaping @Sendable (@escaping @Sendable () -> Bool) async -> JobProcessor.Outcome) {
        let handle = Handle(job: job)
        state.withLock { $0.running[job.id] = handle }
        handle.set(Task {
            _ = await body { handle.leaseLost }
            self.end(handle)
        })
    }

    private func end(_ handle: Handle) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.running[handle.job.id] = nil
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The number of free slots once there is one; 0 when the task is cancelled.
    func freeSlots() async -> Int {
        await wait { $0 < self.slots }
        return Task.isCancelled ? 0 : free
    }

    /// Returns when no job runs any more, even when the calling task is cancelled (cancel
    /// the jobs to hurry it).
    func drained() async {
        while running > 0 {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.running.isEmpty { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
    }

    /// Waits until `ready(running count)` holds, or the task is cancelled.
    private func wait(until ready: @escaping @Sendable (Int) -> Bool) async {
        while !Task.isCancelled, !ready(running) {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let now = state.withLock { state -> Bool in
                        if ready(state.running.count) || Task.isCancelled { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                    defer { state.waiters = [] }
                    return state.waiters
                }
                for waiter in waiters { waiter.resume() }
            }
        }
    }

    /// Stops every job (each is released to the head of its queue).
    func cancelAll() {
        for handle in handles { handle.cancel() }
    }
}

/// How long the worker waits before asking Redis again after a call failed.
enum RedisRetry {
    /// The pause after `failures` failures in a row (1 or more): 100 to 200 ms, then 125 to
    /// 250 ms. Short, so that the worker is at work again within a second of Redis being ready:
    /// a Redis that restarts answers LOADING for as long as it reads its data, and a pause that
    /// kept doubling would outlast the loading by seconds, leaving models idle and the jobs in
    /// flight unrecorded. An unreachable Redis is waited for in the connection itself (up to
    /// its reconnect deadline), not here.
    static func pause(afterFailures failures: Int) -> Duration {
        let ceiling = Int64(min(250, 100 << min(max(failures, 1), 6)))
        return .milliseconds(Int64.random(in: ceiling / 2...ceiling))
    }

    /// What a failed Redis call says about Redis, for the log: out of memory (it refuses
    /// writes at maxmemory; queued jobs still drain), else `otherwise`.
    static func problem(_ error: any Error, otherwise: String = "Redis unavailable") -> String {
        let redisError = (error as? ImageQueueError)?.redisError ?? (error as? RedisError)
        if (error as? ImageQueueError)?.code == .redisFull || redisError?.isOutOfMemory == true {
            return "Redis is out of memory (maxmemory reached with noeviction): it refuses new writes until memory is freed"
        }
        return otherwise
    }
}

/// The ids of the jobs this worker runs now (for the registry), with a way to wait for
/// the set to change so the registry can be refreshed at once.
final class CurrentJobs: Sendable {
    private struct State {
        var ids: Set<String> = []
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    func add(_ id: String) { change { _ = $0.insert(id) } }
    func remove(_ id: String) { change { _ = $0.remove(id) } }
    var all: [String] { state.withLock { Array($0.ids).sorted() } }

    private func change(_ body: (inout Set<String>) -> Void) {
        let waiters = state.withLock { state in
            body(&state.ids)
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns at the next change, after `timeout`, or when the task is cancelled.
    func waitForChange(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            group.addTask { await self.nextChange() }
            await group.next()
            group.cancelAll()
        }
    }

    private func nextChange() async {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let cancelled = state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if cancelled { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
