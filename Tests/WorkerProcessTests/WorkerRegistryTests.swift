import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The live-worker registry: `<prefix>:workers` (ZSET id → heartbeat) and
/// `<prefix>:worker:<id>` (JSON), read from outside with redis-py; gone after a clean exit.
@Suite("worker registry")
struct WorkerRegistryTests {
    /// Prints {"members": [...], "entry": <the worker's JSON or null>}.
    static let reader = """
        import json, sys, redis
        url, prefix, worker = sys.argv[1:4]
        r = redis.Redis.from_url(url, decode_responses=True)
        entry = r.get(f"{prefix}:worker:{worker}")
        print(json.dumps({"members": r.zrange(f"{prefix}:workers", 0, -1),
                          "entry": json.loads(entry) if entry is not None else None}))
        """

    private func registry(_ cli: QueueCLI, worker: String) async throws -> ParsedJSON {
        let result = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"),
                                          ["python3", "-c", Self.reader, cli.redisURL, cli.prefix, worker])
        guard result.status == 0 else { throw TestSetupError("registry reader exited \(result.status): \(result.stderr)") }
        return try ParsedJSON.parse(result.stdout)
    }

    @Test("a running worker is registered with its jobs in flight, and deregisters on SIGTERM")
    func registryEntryLifecycle() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let workerID = "\(cli.prefix)-w1"
        // Lease 3 s: the entry is refreshed every second.
        let worker = try cli.startWorker(["--models", "flux", "--backend", "placeholder", "--lease-seconds", "3",
                                          "--output-dir", cli.outputDirectory(), "--id", workerID],
                                         environment: ["IMAGEQUEUE_PLACEHOLDER_DELAY": "300"])  // in flight until the test has seen it, then cancelled
        let id = try await cli.enqueue("a registered job")

        var seen = ParsedJSON.null
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            seen = try await registry(cli, worker: workerID)
            if seen["entry"]?["current_jobs"]?.array?.contains(.string(id)) == true { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(seen["members"]?.array == [.string(workerID)], "\(seen)\nworker output:\n\(worker.output)")
        let entry = try #require(seen["entry"]?.object, "\(seen)\nworker output:\n\(worker.output)")
        #expect(entry["id"]?.string == workerID)
        #expect(entry["host"]?.string == Self.hostName())
        #expect(entry["pid"]?.integer == Int64(worker.pid))
        #expect(entry["models"]?.array == [.string("flux")])
        #expect(entry["current_jobs"]?.array == [.string(id)], "\(seen)")

        // Seen in flight: no need to wait out the render. A cancel stops it on the worker.
        let cancel = try await cli.run(["cancel", id])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        let cancelled = try await cli.waitForStatus(id, timeout: 60) { $0["status"]?.string == "cancelled" }
        #expect(cancelled["status"]?.string == "cancelled")
        // The worker stops the job and its entry drops it (refreshed every second).
        var stopped = false
        let freeBy = ContinuousClock.now + .seconds(60)
        while !stopped, ContinuousClock.now < freeBy {
            stopped = try await registry(cli, worker: workerID)["entry"]?["current_jobs"]?.array == []
            if !stopped { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(stopped, "the cancelled job left the worker's entry\nworker output:\n\(worker.output)")
        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()
        #expect(ended == .exited(0), "worker output:\n\(worker.output)")

        let after = try await registry(cli, worker: workerID)
        #expect(after["members"]?.array == [], "\(after)")
        #expect(after["entry"]?.isNull == true, "\(after)")
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, 255)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
