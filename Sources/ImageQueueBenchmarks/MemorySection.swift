import Foundation
import ImageQueue
import RedisClient

/// The worker's resident memory idle and while it makes 10 MiB images, and the Redis commands
/// an idle worker sends.
enum MemorySection {
    static func run(_ context: BenchContext) async throws {
        let options = context.options
        let prefix = freshPrefix("memory")
        let keys = QueueKeys(prefix: prefix)
        let client = try makeClient(context.redisConfiguration, prefix: prefix)
        defer { client.close() }
        try await client.setConcurrency(1, model: "flux")
        let directory = scratchDirectory("memory")
        // 1870×1870 RGB in stored deflate blocks: a PNG of about 10 MiB.
        let worker = try WorkerProcess(binary: options.workerBinary!, redisURL: options.redisURL, prefix: prefix,
                                       concurrency: 1, outputDirectory: directory, placeholderSize: 1870)
        do {
            try await measure(worker, context: context, keys: keys, client: client, directory: directory)
        } catch {
            await worker.discard(outputDirectory: directory)
            throw error
        }
        await worker.discard(outputDirectory: directory)
        try await context.probe.deleteKeys(prefix: prefix, flush: false)
    }

    static func measure(_ worker: WorkerProcess, context: BenchContext, keys: QueueKeys, client: ImageQueueClient,
                        directory: String) async throws {
        let options = context.options
        progress("memory: the worker idles 10 s")
        try await Task.sleep(for: .seconds(10))
        guard worker.isRunning, let idle = ProcFS.statusKiB(worker.pid, "VmRSS") else { throw worker.exitedError() }
        context.report.check("worker RSS idle (10 s after start, no jobs)", value: mebibytes(idle), reference: "< 20 MiB", met: idle < 20 * 1024)

        // Redis commands from the idle worker: nothing else talks to Redis meanwhile except the
        // two INFO calls that frame the window (the second counts the first).
        progress("memory: counting the idle worker's Redis commands for \(options.idleSeconds) s")
        let redisBefore = context.redisCPU()
        let before = try await context.probe.commandStats()
        try await Task.sleep(for: .seconds(options.idleSeconds))
        let after = try await context.probe.commandStats()
        let redisIdle = context.redisCPU().map { $0 - (redisBefore ?? 0) }
        var deltas: [(String, Int)] = []
        for (command, stats) in after {
            var calls = stats.calls - (before[command]?.calls ?? 0)
            if command == "info" { calls -= 1 }
            if calls > 0 { deltas.append((command, calls)) }
        }
        deltas.sort { $0.1 > $1.1 }
        let total = deltas.reduce(0) { $0 + $1.1 }
        let perSecond = Double(total) / Double(options.idleSeconds)
        context.report.add(Row(figure: "Redis commands/s from an idle worker (\(options.idleSeconds) s window)", value: fixed(perSecond, 2) + "/s",
                               reference: deltas.map { "\($0.0) \($0.1)" }.joined(separator: ", ")))
        if let redisIdle {
            context.report.add(Row(figure: "Redis CPU from an idle worker", value: fixed(redisIdle / Double(options.idleSeconds) * 1000, 2) + " ms/s"))
        }
        let idleAgain = ProcFS.statusKiB(worker.pid, "VmRSS") ?? 0
        context.report.add(Row(figure: "worker RSS idle after \(10 + options.idleSeconds) s", value: mebibytes(idleAgain)))

        // 10 MiB images, one at a time (concurrency 1), VmRSS sampled every 20 ms.
        progress("memory: \(options.images) images of 10 MiB")
        try await fill(client, model: "flux", count: options.images, batch: options.images, parallel: 1)
        var peak = 0
        let deadline = ContinuousClock.now + .seconds(600)
        while true {
            peak = max(peak, ProcFS.statusKiB(worker.pid, "VmRSS") ?? 0)
            let done = try await context.probe.metaCount(keys, "flux", "completed_total")
            let failed = try await context.probe.metaCount(keys, "flux", "failed_total")
            if failed > 0 { throw BenchError("\(failed) of the 10 MiB jobs failed: \(worker.stderrTail)") }
            if done >= options.images { break }
            if !worker.isRunning { throw worker.exitedError() }
            if ContinuousClock.now > deadline { throw BenchError("the 10 MiB images took over 600 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
        let hwm = ProcFS.statusKiB(worker.pid, "VmHWM") ?? 0
        let sizes = (try? FileManager.default.contentsOfDirectory(atPath: directory))?.compactMap {
            (try? FileManager.default.attributesOfItem(atPath: directory + "/" + $0)[.size] as? NSNumber)?.intValue
        } ?? []
        let largest = sizes.max() ?? 0
        context.report.add(Row(figure: "worker peak RSS while making \(options.images) images of \(fixed(Double(largest) / 1_048_576, 2)) MiB (VmRSS every 20 ms)",
                               value: mebibytes(peak), reference: "VmHWM \(mebibytes(hwm)); \(sizes.count) files written"))
    }
}
