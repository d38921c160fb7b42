import FoundationEssentials
import ImageQueue
import Logging
import RedisClient
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The worker's background chores, one service: the recovery sweep (with jitter, so many
/// workers do not sweep in lockstep), the registry entry that lets operators list live
/// workers, and removing expired result files.
struct Maintenance: Service {
    let queue: WorkerQueue
    let redis: any RedisClientProtocol
    let keys: QueueKeys
    let models: [String]
    let workerID: String
    let store: any ResultStore
    let currentJobs: CurrentJobs
    let configuration: WorkerConfiguration
    let logger: Logger
    let started = ContinuousClock.now
    /// Whether the last registration was refused for want of memory (said once per episode).
    private let registryRefused = RefusalFlag()

    private final class RefusalFlag: Sendable {
        let refused = Mutex(false)
    }

    /// How often the registry entry is refreshed; it lives three times as long.
    var registryInterval: Duration { .milliseconds(max(1000, min(configuration.lease.wholeMilliseconds / 3, 10_000))) }

    func run() async throws {
        var nextSweep = ContinuousClock.now
        var nextCleanup = ContinuousClock.now + .seconds(60)
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            await register()
            if ContinuousClock.now >= nextSweep {
                await sweep()
                // Half a lease apart, ±25 %, so a crashed worker's job waits at most about
                // a lease and a half, and workers drift apart.
                let half = configuration.lease.wholeMilliseconds / 2
                nextSweep = .now + .milliseconds(Int64.random(in: (half * 3 / 4)...(half * 5 / 4)))
            }
            if ContinuousClock.now >= nextCleanup {
                await store.removeExpired()
                nextCleanup = .now + .seconds(600)
            }
            // Until the next interval, or soon after a job starts or ends, so the registry
            // (imagequeue workers, the dashboard) shows the jobs in flight without delay; at
            // most every 250 ms, so a busy worker does not rewrite it for every job.
            try? await cancelWhenGracefulShutdown {
                await currentJobs.waitForChange(timeout: registryInterval)
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        await deregister()
    }

    private func sweep() async {
        for model in models {
            do {
                var total = (requeued: 0, dead: 0)
                while true {
                    let recovered = try await queue.recoverExpired(model: model, limit: 100)
                    total.requeued += recovered.requeued
                    total.dead += recovered.dead
                    if recovered.requeued + recovered.dead < 100 { break }
                }
                if total.requeued + total.dead > 0 {
                    logger.notice("recovered jobs whose lease expired",
                                  metadata: ["job.model": "\(model)", "requeued": "\(total.requeued)", "dead": "\(total.dead)"])
                }
            } catch {
                logger.debug("recovery sweep failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The registry entry: `<prefix>:worker:<id>` (JSON, expiring) and `<prefix>:workers` (ZSET).
    /// Its times are the Redis server's, like every time in the queue: a worker whose clock
    /// is off must neither look dead to the others nor trim their entries as stale.
    private func register() async {
        guard let now = await serverTime() else { return }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let entry = WorkerInfo(id: workerID, host: String(cString: host), pid: Int(getpid()), models: models,
                                startedAt: now - (ContinuousClock.now - started).wholeMilliseconds, heartbeatAt: now,
                                currentJobs: currentJobs.all)
        guard let json = try? JSONEncoder().encode(entry) else { return }
        let ttl = registryInterval.wholeMilliseconds * 3
        let replies = try? await redis.pipeline([
            RedisCommand("SET", keys.worker(workerID), Array(json), "PX", ttl),
            RedisCommand("ZADD", keys.workers, entry.heartbeatAt, workerID),
            RedisCommand("ZREMRANGEBYSCORE", keys.workers, "-inf", entry.heartbeatAt - ttl * 10),
        ])
        guard let replies else { return }
        let outOfMemory = replies.contains { reply in
            if case .error(let text) = reply { return RedisError(.server, text).isOutOfMemory }
            return false
        }
        let wasRefused = registryRefused.refused.withLock { refused in
            defer { refused = outOfMemory }
            return refused
        }
        if outOfMemory && !wasRefused {
            let problem = RedisRetry.problem(RedisError(.server, "OOM"))
            logger.warning("\(problem): new jobs are refused to producers; this worker keeps claiming and finishing the queued ones, but cannot refresh its registry entry")
        } else if !outOfMemory && wasRefused {
            logger.notice("Redis accepts writes again; the registry entry is refreshed")
        }
    }

    /// The Redis server's clock in ms, nil when Redis does not answer.
    private func serverTime() async -> Int64? {
        try? await redis.send("TIME").redisTimeMilliseconds
    }

    private func deregister() async {
        _ = try? await redis.pipeline([RedisCommand("DEL", keys.worker(workerID)), RedisCommand("ZREM", keys.workers, workerID)])
    }
}

