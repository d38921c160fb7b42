import ImageQueue
import Logging
import ServiceLifecycle
import Synchronization

/// The claim loops of every served model, as one service: each model has its own loops,
/// so a slow model never delays another. On graceful shutdown the loops stop claiming;
/// jobs in flight get the grace period to finish and are then released to the head of
/// their queue.
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
                for slot in 0..<slotsPerModel {
                    group.addTask { await loop(model: model, slot: slot) }
                }
            }
        }
    }

    private func loop(model: String, slot: Int) async {
        var logger = logger
        logger[metadataKey: "job.model"] = "\(model)"
        var failures = 0
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            metrics.tick(model: model)
            do {
                switch try await queue.claim(model: model, lease: configuration.lease) {
                case .claimed(let job):
                    failures = 0
                    await runWithGrace(job)
                case .full, .empty:
                    failures = 0
                    // Blocks inside Redis until the doorbell rings; shutdown interrupts it.
                    _ = try await cancelWhenGracefulShutdown { try await queue.waitForWork(model: model, slot: slot) }
                }
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
                failures += 1
                if failures == 1 {
                    logger.warning("cannot reach Redis; retrying with backoff", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: RedisRetry.pause(afterFailures: failures))
            }
        }
        logger.debug("claim loop stopped", metadata: ["slot": "\(slot)"])
    }

    /// Runs the job; after a shutdown request it has `grace` to finish, then it is
    /// cancelled (and so released).
    private func runWithGrace(_ job: ClaimedJob) async {
        currentJobs.add(job.id)
        defer { currentJobs.remove(job.id) }
        let work = Task { await processor.process(job) }
        let grace = configuration.grace
        let logger = logger
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                _ = await work.value
            } onGracefulShutdown: {
                logger.info("shutting down: waiting for the job in flight", metadata: ["job.id": "\(job.id)",
                                                                                      "grace_s": "\(grace.seconds)"])
                Task {
                    try? await Task.sleep(for: grace)
                    work.cancel()
                }
            }
        } onCancel: {
            work.cancel()
        }
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
