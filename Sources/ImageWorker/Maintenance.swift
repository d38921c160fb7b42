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
    let registry: WorkerRegistry
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

    /// Refreshes this worker's entry in the registry (`WorkerRegistry`, which owns its keys
    /// and stamps it with the Redis server's time).
    private func register() async {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        guard let stored = try? await registry.register(id: workerID, host: String(cString: host), pid: Int(getpid()), models: models,
                                                        uptime: ContinuousClock.now - started, currentJobs: currentJobs.all,
                                                        master: queue.sentinelMaster, ttl: registryInterval * 3) else { return }
        let outOfMemory = !stored
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

    private func deregister() async {
        try? await registry.deregister(workerID)
    }
}

