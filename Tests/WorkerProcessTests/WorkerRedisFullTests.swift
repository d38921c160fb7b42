import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A Redis at `maxmemory` with `noeviction` (as `ops/redis.conf` sets it): producers are
/// refused clearly, and the workers drain what was accepted, so it frees up by itself.
@Suite("worker: a full Redis drains")
struct WorkerRedisFullTests {
    static let refusal = "imagequeue: Redis is out of memory (maxmemory reached): nothing was queued; try again later\n"

    @Test("at maxmemory enqueue is refused in one line; a worker completes every accepted job; then enqueue works again")
    func fullRedisDrainsByItself() async throws {
        let server = try await RedisServer.launch(extraArguments: ["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"])
        let cli = try QueueCLI(redisURL: server.url, label: "oom")
        defer { cli.removeOutputDirectory() }
        let producer = ["IMAGEQUEUE_MAX_PROMPT_LENGTH": "100000"]
        func enqueue(_ n: Int) async throws -> CommandResult {
            // 90 kB prompts: a score of jobs fill the 2 MB or so above an empty Redis's own use.
            try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "--no-enhance",
                               "job \(n) " + String(repeating: "x", count: 90_000)], environment: producer)
        }

        var accepted: [String] = []
        var refused: CommandResult?
        for n in 0..<500 {
            let result = try await enqueue(n)
            guard result.status == 0 else {
                refused = result
                break
            }
            accepted.append(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let refusal = try #require(refused, "Redis never filled up")
        #expect(refusal.status == 1)
        #expect(refusal.stdout.isEmpty)
        #expect(refusal.stderr == Self.refusal)
        try #require(accepted.count >= 5, "only \(accepted.count) jobs fit")
        // Still full: refused again, the same way; nothing was queued.
        let again = try await enqueue(999)
        #expect(again.status == 1 && again.stderr == Self.refusal, "\(again)")
        #expect(try await cli.json(["queues", "--json"])["flux"]?["pending"]?.integer == Int64(accepted.count))
        // The operator can still raise the limit at maxmemory.
        let concurrency = try await cli.run(["concurrency", "--model", "flux", "4"])
        #expect(concurrency.status == 0, "\(concurrency)")

        // Finished jobs expire a second after they end, so the memory frees as the queue drains.
        let worker = try cli.startWorker(["--models", "flux", "--backend", "placeholder", "--concurrency", "4",
                                          "--output-dir", cli.outputDirectory(), "--id", "\(cli.prefix)-w"],
                                         environment: ["IMAGEQUEUE_RETENTION": "1", "IMAGEQUEUE_PLACEHOLDER_SIZE": "8",
                                                       "IMAGEQUEUE_LOG_LEVEL": "info", "IMAGEQUEUE_MAX_PROMPT_LENGTH": "100000"])
        var stats = try await cli.json(["queues", "--json"])["flux"]
        let deadline = ContinuousClock.now + .seconds(120)
        while stats?["completed_total"]?.integer != Int64(accepted.count), ContinuousClock.now < deadline, worker.isRunning {
            try await Task.sleep(for: .milliseconds(200))
            stats = try await cli.json(["queues", "--json"])["flux"]
        }
        #expect(stats?["completed_total"]?.integer == Int64(accepted.count), "\(stats.map { "\($0)" } ?? "-")\n\(worker.output)")
        #expect(stats?["pending"]?.integer == 0 && stats?["active"]?.integer == 0 && stats?["dead"]?.integer == 0,
                "\(stats.map { "\($0)" } ?? "-")")
        // Each accepted job completed, once.
        let completions = worker.output.split(separator: "\n").filter { $0.hasSuffix("job completed") }
        for id in accepted {
            #expect(completions.filter { $0.contains("job.id=\(id) ") || $0.contains("job.id=\(id)\n") }.count == 1,
                    "\(id) completed once")
        }
        #expect(!worker.output.contains("Redis unavailable"), "\(worker.output)")

        // Memory freed: enqueueing works again (until then, every refusal is the clear one).
        var last = try await enqueue(1000)
        while last.status != 0, ContinuousClock.now < deadline {
            #expect(last.stderr == Self.refusal, "\(last)")
            try await Task.sleep(for: .milliseconds(200))
            last = try await enqueue(1000)
        }
        #expect(last.status == 0, "enqueue after the drain: \(last)")
        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()
        #expect(ended == .exited(0), "\(worker.output)")
    }

    @Test("a worker on a Redis at maxmemory says Redis is out of memory and what that means, not that it is unavailable")
    func workerSaysRedisIsOutOfMemory() async throws {
        // maxmemory 1 byte: full from the start; the worker's registry entry is refused.
        let server = try await RedisServer.launch(extraArguments: ["--maxmemory", "1", "--maxmemory-policy", "noeviction"])
        let cli = try QueueCLI(redisURL: server.url, label: "oom")
        defer { cli.removeOutputDirectory() }
        let worker = try cli.startWorker(["--models", "flux", "--backend", "placeholder", "--output-dir", cli.outputDirectory(),
                                          "--id", "\(cli.prefix)-w"])
        let deadline = ContinuousClock.now + .seconds(30)
        while !worker.output.contains("Redis is out of memory"), worker.isRunning, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let said = worker.output
        #expect(said.contains("Redis is out of memory (maxmemory reached with noeviction): it refuses new writes until memory is freed"),
                "\(said)")
        #expect(said.contains("keeps claiming and finishing the queued ones"), "\(said)")
        #expect(!said.contains("Redis unavailable") && !said.contains("cannot reach Redis"), "\(said)")
        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()
        #expect(ended == .exited(0), "\(worker.output)")
    }
}
