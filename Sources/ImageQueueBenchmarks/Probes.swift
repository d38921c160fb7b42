import Foundation
import ImageQueue
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// A failure that ends one section (the others still run).
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - /proc

enum ProcFS {
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// User + system CPU seconds a live process has used (10 ms resolution), from /proc/PID/stat.
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime field 14, stime field 15.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / ticksPerSecond
    }

    /// A KiB field of /proc/PID/status (`VmRSS`, `VmHWM`).
    static func statusKiB(_ pid: Int32, _ field: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }

    static func commandName(_ pid: Int32) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

func mebibytes(_ kib: Int) -> String { fixed(Double(kib) / 1024, 1) + " MiB" }

// MARK: - Redis introspection

/// INFO, CONFIG and key cleanup on the bench's own connection.
struct RedisProbe {
    let redis: any RedisClientProtocol
    let endpoint: RedisEndpoint

    /// `INFO section` as field -> value.
    func info(_ section: String) async throws -> [String: String] {
        let text = try await redis.send("INFO", section).string ?? ""
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
        }
        return fields
    }

    /// `INFO commandstats`: command -> (calls, µs spent).
    func commandStats() async throws -> [String: (calls: Int, usec: Int)] {
        var stats: [String: (calls: Int, usec: Int)] = [:]
        for (key, value) in try await info("commandstats") where key.hasPrefix("cmdstat_") {
            var calls = 0, usec = 0
            for pair in value.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                if parts[0] == "calls" { calls = Int(parts[1]) ?? 0 }
                if parts[0] == "usec" { usec = Int(parts[1]) ?? 0 }
            }
            stats[String(key.dropFirst("cmdstat_".count))] = (calls, usec)
        }
        return stats
    }

    /// The redis-server process when it runs on this machine (its CPU time is then readable).
    func localPid() async throws -> Int32? {
        guard let pid = Int32(try await info("server")["process_id"] ?? "") else { return nil }
        switch endpoint.address {
        case .tcp(let host, _):
            guard host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]" else { return nil }
        case .unix:
            break
        }
        return ProcFS.commandName(pid)?.hasPrefix("redis") == true ? pid : nil
    }

    /// Deletes every key under `prefix:` (SCAN + UNLINK), or the whole database with `flush`.
    func deleteKeys(prefix: String, flush: Bool) async throws {
        if flush {
            try await redis.send("FLUSHDB")
            return
        }
        var cursor = "0"
        repeat {
            let reply = try await redis.send("SCAN", cursor, "MATCH", "\(prefix):*", "COUNT", "5000")
            let parts = reply.array ?? []
            cursor = parts.first?.string ?? "0"
            let keys = parts.count > 1 ? (parts[1].array ?? []).compactMap(\.bytes) : []
            if !keys.isEmpty { try await redis.send(RedisCommand(arguments: ["UNLINK".redisBytes] + keys)) }
        } while cursor != "0"
    }

    /// A model's meta counter (`completed_total`, `failed_total`).
    func metaCount(_ keys: QueueKeys, _ model: String, _ field: String) async throws -> Int {
        Int(try await redis.send("HGET", keys.meta(model), field).int ?? 0)
    }
}

/// A client with the rate limit off: the bench measures the queue, not the per-user limiter.
func makeClient(_ redis: RedisConfiguration, prefix: String) throws -> ImageQueueClient {
    var configuration = QueueConfiguration()
    configuration.keyPrefix = prefix
    configuration.rateLimit = nil
    return try ImageQueueClient(redis: redis, configuration: configuration)
}

func freshPrefix(_ section: String) -> String { "iqbench\(getpid())\(section)" }

/// A section's own queue: a fresh key prefix, its keys, and a client on it (the caller closes it).
func sectionQueue(_ section: String, _ context: BenchContext) throws -> (prefix: String, keys: QueueKeys, client: ImageQueueClient) {
    let prefix = freshPrefix(section)
    return (prefix, QueueKeys(prefix: prefix), try makeClient(context.redisConfiguration, prefix: prefix))
}

/// Enqueues `count` jobs in batches, `parallel` batches in flight at once (pipelined on the
/// client's one connection). Throws when any job is refused.
func fill(_ client: ImageQueueClient, model: String, count: Int, enhance: Bool = false,
          batch: Int = 1000, parallel: Int = 4) async throws {
    let batches = (count + batch - 1) / batch
    try await withThrowingTaskGroup(of: Void.self) { group in
        for lane in 0..<parallel {
            group.addTask {
                var index = lane
                while index < batches {
                    let size = min(batch, count - index * batch)
                    let requests = (0..<size).map {
                        JobRequest(model: model, prompt: "noop \(index)-\($0)", user: "bench", enhance: enhance)
                    }
                    for result in try await client.enqueue(batch: requests) {
                        if case .failure(let error) = result { throw BenchError("enqueue failed: \(error)") }
                    }
                    index += parallel
                }
            }
        }
        try await group.waitForAll()
    }
}

// MARK: - The worker process

/// One worker child (`imagequeue-worker`, or `imagequeue worker`): its pid, its stderr (kept in a file), and a graceful stop.
final class WorkerProcess {
    let process = Process()
    let stderrPath: String
    let concurrency: Int

    /// Starts the worker for the flux model with the placeholder backend.
    init(binary: String, redisURL: String, prefix: String, concurrency: Int, outputDirectory: String,
         placeholderSize: Int) throws {
        self.concurrency = concurrency
        stderrPath = "\(outputDirectory).stderr"
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        // `imagequeue-worker OPTIONS`, or `imagequeue worker OPTIONS`.
        let subcommand = URL(fileURLWithPath: binary).lastPathComponent == "imagequeue-worker" ? [] : ["worker"]
        process.arguments = subcommand + ["--models", "flux", "--backend", "placeholder", "--concurrency", String(concurrency),
                             "--prefix", prefix, "--redis", redisURL, "--output-dir", outputDirectory]
        var environment = ProcessInfo.processInfo.environment
        environment["IMAGEQUEUE_PLACEHOLDER_SIZE"] = String(placeholderSize)
        environment["IMAGEQUEUE_LOG_LEVEL"] = "warning"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// The end of its stderr, for an error message.
    var stderrTail: String {
        let text = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        return String(text.suffix(600)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// When the worker refused `--concurrency`, the largest value its message says it accepts.
    var refusedConcurrencyMaximum: Int? {
        guard !isRunning, let range = stderrTail.range(of: "--concurrency must be from 1 to ") else { return nil }
        return Int(stderrTail[range.upperBound...].prefix { $0.isNumber })
    }

    /// An error naming how the worker ended.
    func exitedError() -> BenchError {
        BenchError("the worker exited with status \(process.terminationStatus): \(stderrTail)")
    }

    /// SIGTERM (it finishes or releases its jobs), then SIGKILL after `grace`.
    func stop(grace: Duration = .seconds(20)) async {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if isRunning {
            kill(pid, SIGKILL)
            while isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        }
    }

    /// Stops it and removes its output directory and log.
    func discard(outputDirectory: String) async {
        await stop()
        try? FileManager.default.removeItem(atPath: outputDirectory)
        try? FileManager.default.removeItem(atPath: stderrPath)
    }
}

/// A directory for the worker's images in memory (tmpfs), so disk speed is not measured.
func scratchDirectory(_ section: String) -> String {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return "\(base)/imagequeue-bench-\(getpid())-\(section)"
}
