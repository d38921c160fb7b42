import Foundation
import ImageQueue
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// The worker's resident memory idle and while it makes 10 MiB images, and the Redis commands
/// an idle worker sends.
enum MemorySection {
    static func run(_ context: BenchContext) async throws {
        let options = context.options
        let (prefix, keys, client) = try sectionQueue("memory", context)
        try await withRunning([client]) {
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
    }

    static func measure(_ worker: WorkerProcess, context: BenchContext, keys: QueueKeys, client: ImageQueueClient,
                        directory: String) async throws {
        let options = context.options
        progress("memory: the worker idles 10 s")
        try await Task.sleep(for: .seconds(10))
        guard worker.isRunning, let idle = ProcFS.statusKiB(worker.pid, "VmRSS") else { throw worker.exitedError() }
        context.report.check("worker RSS idle (10 s after start, no jobs)", value: mebibytes(idle), reference: "< 20 MiB", met: idle < 20 * 1024)

        // Redis commands from the idle worker. Nothing else talks to Redis meanwhile except the
        // two INFO calls that frame the window (the second counts the first) and, when redis-cli
        // is installed, a MONITOR that tells the commands the worker sends from those run inside
        // its scripts (INFO commandstats counts both).
        progress("memory: counting the idle worker's Redis commands for \(options.idleSeconds) s")
        let monitor = IdleMonitor.start(context.probe.endpoint)
        try await Task.sleep(for: .milliseconds(300))  // MONITOR is on before the window opens
        let redisBefore = context.redisCPU()
        let opened = Date().timeIntervalSince1970
        let before = try await context.probe.commandStats()
        try await Task.sleep(for: .seconds(options.idleSeconds))
        let after = try await context.probe.commandStats()
        let closed = Date().timeIntervalSince1970
        let redisIdle = context.redisCPU().map { $0 - (redisBefore ?? 0) }
        let sent = await monitor?.stop(from: opened, to: closed)
        var deltas: [(String, Int)] = []
        for (command, stats) in after {
            var calls = stats.calls - (before[command]?.calls ?? 0)
            if command == "info" { calls -= 1 }
            if command == "monitor" { calls = 0 }
            if calls > 0 { deltas.append((command, calls)) }
        }
        let window = Double(options.idleSeconds)
        func listing(_ counts: [(String, Int)]) -> String {
            counts.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
        }
        let total = deltas.reduce(0) { $0 + $1.1 }
        if let sent {
            let sentTotal = sent.reduce(0) { $0 + $1.1 }
            context.report.add(Row(figure: "Redis commands/s an idle worker sends (MONITOR, \(options.idleSeconds) s)",
                                   value: fixed(Double(sentTotal) / window, 2) + "/s", reference: listing(sent)))
        }
        context.report.add(Row(figure: "Redis commands/s executed for an idle worker (INFO commandstats deltas, incl. inside scripts)",
                               value: fixed(Double(total) / window, 2) + "/s", reference: listing(deltas)))
        if let redisIdle {
            context.report.add(Row(figure: "Redis CPU for an idle worker", value: fixed(redisIdle / window * 1000, 2) + " ms/s"))
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
        let files = (FileManager.default.enumerator(atPath: directory)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".png") }
        let sizes = files.compactMap {
            (try? FileManager.default.attributesOfItem(atPath: directory + "/" + $0)[.size] as? NSNumber)?.intValue
        }
        let largest = sizes.max() ?? 0
        context.report.add(Row(figure: "worker peak RSS while making \(options.images) images of \(fixed(Double(largest) / 1_048_576, 2)) MiB (VmRSS every 20 ms)",
                               value: mebibytes(peak), reference: "VmHWM \(mebibytes(hwm)); \(sizes.count) files written"))
    }
}

/// `redis-cli monitor` for a window: counts the commands clients send, without those run inside
/// scripts (shown as `[db lua]`) and without the bench's INFO calls.
final class IdleMonitor {
    let process = Process()
    let outputPath = NSTemporaryDirectory() + "imagequeue-bench-monitor-\(getpid()).txt"

    static func start(_ endpoint: RedisEndpoint) -> IdleMonitor? {
        guard endpoint.password == nil, let tool = findExecutable("redis-cli") else { return nil }
        var arguments: [String]
        switch endpoint.address {
        case .tcp(let host, let port): arguments = ["-h", host, "-p", String(port)]
        case .unix(let path): arguments = ["-s", path]
        }
        arguments += ["-n", String(endpoint.database), "monitor"]
        let monitor = IdleMonitor()
        guard FileManager.default.createFile(atPath: monitor.outputPath, contents: nil) else { return nil }
        monitor.process.executableURL = URL(fileURLWithPath: tool)
        monitor.process.arguments = arguments
        monitor.process.standardOutput = FileHandle(forWritingAtPath: monitor.outputPath)
        monitor.process.standardError = FileHandle.nullDevice
        do { try monitor.process.run() } catch { return nil }
        return monitor
    }

    /// Stops the monitor; returns command -> count over the commands run between two Unix times.
    func stop(from opened: Double, to closed: Double) async -> [(String, Int)] {
        // SIGKILL: the child inherits a signal mask that blocks SIGTERM, and it holds no state.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: outputPath)
        var counts: [String: Int] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            // 1700000000.123456 [0 127.0.0.1:50000] "BLPOP" "key" "5"
            guard let close = line.firstIndex(of: "]"), !line[..<close].hasSuffix(" lua"),
                  let time = Double(line.prefix { $0 != " " }), time >= opened, time <= closed else { continue }
            let rest = line[line.index(after: close)...].drop { $0 == " " }
            guard rest.first == "\"" else { continue }
            let command = rest.dropFirst().prefix { $0 != "\"" }.lowercased()
            if command == "info" { continue }
            counts[command, default: 0] += 1
        }
        return counts.map { ($0.key, $0.value) }
    }
}
