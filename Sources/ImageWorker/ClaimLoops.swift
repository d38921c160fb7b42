import ImageQueue
import Logging
import RedisClient
import ServiceLifecycle
import Synchronization

/// The claim loops of every served model, as one service: each model has its own loop, so a
/// slow model never delays another. A loop claims as many jobs as it has free slots in one
/// call, runs each as a child task of the loop, and keeps all their leases alive with one
/// heartbeat call per lease third. On graceful shutdown the loops stop claiming; jobs in flight get the grace
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

    private var nextClaims: NextClaims { processor.completions.nextClaims }

    func run() async throws {
        var lanes: [String: Lane] = [:]
        for model in models { lanes[model] = Lane(slots: slotsPerModel) }
        let lanesByModel = lanes
        await withDiscardingTaskGroup { loops in
            loops.addTask { await listenForCancels(lanesByModel) }
            await withDiscardingTaskGroup { claimLoops in
                for model in models {
                    claimLoops.addTask { await loop(model: model, lane: lanesByModel[model]!) }
                }
            }
            loops.cancelAll()  // the listener: no job runs any more
        }
    }

    /// Stops a running job within moments of its cancel: `cancelJob` publishes its id on the
    /// model's cancel channel. Messages missed while the connection was down are caught by
    /// the next heartbeat, which reports the job `cancelled`.
    private func listenForCancels(_ lanes: [String: Lane]) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let messages = try await queue.cancellations(models: models)
                failures = 0
                for await message in messages {
                    guard case .message(_, let payload) = message else { continue }
                    let id = String(decoding: payload, as: UTF8.self)
                    guard let model = try? JobID(id).model, let handle = lanes[model]?.handle(id) else { continue }
                    logger.info("job cancelled while running; stopping it", metadata: ["job.id": "\(id)"])
                    handle.stop(.cancelled)
                }
            } catch {
                if Task.isCancelled { return }
                failures += 1
                if failures == 1 {
                    logger.warning("cannot listen for cancels (\(RedisRetry.problem(error, otherwise: "Redis failed"))); heartbeats still notice them; retrying",
                                   metadata: ["error": "\(error.message)"])
                }
                try? await Task.sleep(for: RedisRetry.pause(afterFailures: failures))
            }
        }
    }

    private func loop(model: String, lane: Lane) async {
        var modelLogger = logger
        modelLogger[metadataKey: "job.model"] = "\(model)"
        let logger = modelLogger
        let grace = configuration.grace
        // The lane's jobs are children of this group; the lease keeper and the grace timer are
        // their siblings, cancelled once the last job has ended.
        await withDiscardingTaskGroup { group in
            group.addTask { await keepLeases(lane, model: model, logger: logger) }
            group.addTask {
                // The grace timer: from the start of a graceful shutdown, the jobs in flight
                // have `grace` to finish; then they are cancelled (and released).
                do {
                    try await gracefulShutdown()
                    try await Task.sleep(for: grace)
                } catch {
                    return  // cancelled: the loop has ended
                }
                lane.cancelAll()
            }
            await withGracefulShutdownHandler {
                var failures = 0
                // After an empty or full answer, the next claim goes out behind the doorbell wait.
                var waitFirst = false
                while !Task.isShuttingDownGracefully, !Task.isCancelled {
                    metrics.tick(model: model)
                    var free = lane.free
                    let lease = configuration.lease
                    // Jobs claimed by the completion call of jobs of this lane (NextClaims).
                    var carried: ClaimBatch? = nil
                    if free == 0 {
                        // Every slot busy: the next completion call claims for this loop too, and
                        // the loop waits for a slot to free up (shutdown interrupts the wait).
                        nextClaims.request(model: model, count: lane.slots, lease: lease)
                        free = (try? await cancelWhenGracefulShutdown { await lane.freeSlots() }) ?? 0
                        carried = await nextClaims.take(model: model)
                        if carried == nil { guard free > 0 else { break } }
                    }
                    do {
                        let count = free
                        let batch: ClaimBatch
                        if let carried {
                            batch = carried
                        } else if waitFirst {
                            // Blocks inside Redis until the doorbell rings; shutdown interrupts it.
                            batch = try await cancelWhenGracefulShutdown { try await queue.waitThenClaim(model: model, lease: lease, upTo: count) }
                        } else {
                            batch = try await queue.claim(model: model, lease: lease, upTo: count)
                        }
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
                            // Carried jobs start as the slots of the jobs just completed free up.
                            if carried != nil { await lane.freeSlots(atLeast: jobs.count) }
                            for job in jobs {
                                currentJobs.add(job.id)
                                lane.start(job, in: &group) { lost in
                                    let outcome = await processor.process(job, stopReason: lost)
                                    currentJobs.remove(job.id)
                                    return outcome
                                }
                            }
                        case .full, .empty, .paused:
                            // Wait for the doorbell: a completion, an enqueue or a resume rings it.
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
                // A cancellation of the loop reaches the jobs by itself: they are its children.
                await lane.drained()
            } onGracefulShutdown: {
                let count = lane.running
                if count > 0 {
                    logger.info("shutting down: waiting for the jobs in flight", metadata: ["jobs": "\(count)", "grace_s": "\(grace.seconds)"])
                }
            }
            group.cancelAll()
        }
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
                        guard case .failure(let error) = outcome, lane.isRunning(handle) else { continue }
                        if error.code == .cancelled {
                            // The backstop of the cancel message (missed while pub/sub reconnected).
                            logger.info("job cancelled while running; stopping it", metadata: ["job.id": "\(handle.job.id)"])
                            handle.stop(.cancelled)
                        } else if error.code == .staleToken || error.code == .notFound {
                            logger.warning("lease lost: another worker owns the job now; abandoning it",
                                           metadata: ["job.id": "\(handle.job.id)"])
                            handle.stop(.leaseLost)
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
