import CurlHTTP
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Two workers whose wall clocks are an hour fast and an hour slow (an LD_PRELOAD shim of
/// ours, Tests/Fakes/clock_skew.c, moves only CLOCK_REALTIME) share one queue: every time the
/// queue acts on comes from Redis, so nothing they do depends on their clocks.
@Suite("clock skew between worker hosts", .enabled(if: ClockSkewShim.compilerPath != nil, "needs a C compiler (cc) for the clock shim"))
struct WorkerClockSkewTests {
    /// Prints Redis's time (ms), the registry and every job's fields the test checks.
    static let reader = """
        import json, sys, redis
        url, prefix, ids = sys.argv[1], sys.argv[2], sys.argv[3:]
        r = redis.Redis.from_url(url, decode_responses=True)
        seconds, micros = r.time()
        members = r.zrange(f"{prefix}:workers", 0, -1, withscores=True)
        jobs = {i: r.hgetall(f"{prefix}:{{flux}}:job:{i}") for i in ids}
        print(json.dumps({"now": seconds * 1000 + micros // 1000,
                          "workers": {m: int(s) for m, s in members},
                          "jobs": {i: {k: h.get(k) for k in ("status", "attempt", "worker", "started_at", "finished_at")}
                                   for i, h in jobs.items()}}))
        """

    private func read(_ cli: QueueCLI, _ ids: [String]) async throws -> ParsedJSON {
        let result = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"),
                                          ["python3", "-c", Self.reader, cli.redisURL, cli.prefix] + ids)
        guard result.status == 0 else { throw TestSetupError("reader exited \(result.status): \(result.stderr)") }
        return try ParsedJSON.parse(result.stdout)
    }

    @Test("workers an hour fast and an hour slow: leases, registry and job times follow Redis; nothing is recovered early")
    func skewedWorkersShareTheQueue() async throws {
        let shim = try ClockSkewShim.build()
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        _ = try await cli.run(["concurrency", "--model", "flux", "2"])
        var workers: [(id: String, skew: Int, process: SpawnedProcess)] = []
        for (name, skew) in [("fast", 3600), ("slow", -3600)] {
            let id = "\(cli.prefix)-\(name)"
            // A 3 s lease and 1.5 s jobs: a worker that judged leases by its own clock would
            // see the other's as long expired (fast) or renew its own far too late (slow).
            let process = try cli.startWorker(["--models", "flux", "--backend", "placeholder", "--lease-seconds", "3",
                                               "--output-dir", cli.outputDirectory(), "--id", id],
                                              environment: ["IMAGEQUEUE_PLACEHOLDER_DELAY": "1.5", "LD_PRELOAD": shim,
                                                            "IMAGEQUEUE_TEST_CLOCK_SKEW_SECONDS": String(skew)])
            workers.append((id, skew, process))
        }
        defer { for worker in workers { worker.process.send(SIGKILL) } }

        var ids: [String] = []
        for index in 0..<6 { ids.append(try await cli.enqueue("a skewed clock \(index)", enhance: false)) }
        for id in ids {
            let done = try await cli.waitForStatus(id, "completed", timeout: 60)
            #expect(done["status"]?.string == "completed", "\(done)\n\(workers.map(\.process.output))")
        }
        let seen = try await read(cli, ids)
        let now = try #require(seen["now"]?.integer)
        let hour: Int64 = 3_600_000, margin: Int64 = 120_000
        for id in ids {
            let job = try #require(seen["jobs"]?[id])
            // Claimed once: no lease was judged expired, by the sweep or anyone else.
            #expect(job["attempt"]?.string == "1", "\(id): \(job)")
            for field in ["started_at", "finished_at"] {
                let time = try #require(Int64(job[field]?.string ?? ""), "\(id) has no \(field): \(job)")
                #expect(abs(time - now) < margin, "\(id).\(field) = \(time) is not Redis's time \(now)")
            }
        }
        // Both stay registered, with Redis's time: the fast one did not trim the slow one
        // (which a registry kept by host clocks did), nor look an hour ahead.
        for worker in workers {
            let heartbeat = try #require(seen["workers"]?[worker.id]?.integer, "\(worker.id) is not registered: \(seen)")
            #expect(abs(heartbeat - now) < margin, "\(worker.id) heartbeat \(heartbeat), Redis \(now)")
        }
        // The shim really moved their clocks: each worker's log lines carry its own time.
        for worker in workers {
            // Lines written in the last two minutes: the hour then, or the hour now.
            let stamps = [now - margin, now].map {
                ClockSkewShim.logHour(Date(timeIntervalSince1970: Double($0 + Int64(worker.skew) * 1000) / 1000))
            }
            #expect(stamps.contains { worker.process.output.contains($0) },
                    "\(worker.id) logs no line stamped \(stamps):\n\(worker.process.output)")
            #expect(!worker.process.output.contains(ClockSkewShim.logHour(Date(timeIntervalSince1970: Double(now + hour * 3) / 1000))))
        }
        // `serve` an hour fast still counts both workers live: it judges their heartbeats on
        // Redis's clock too.
        let port = try RedisServer.freePort()
        let serve = try cli.start(["serve", "--host", "127.0.0.1", "--port", String(port), "--redis", cli.redisURL, "--prefix", cli.prefix],
                                  environment: ["IMAGEQUEUE_API_TOKEN": "skew-test-token", "LD_PRELOAD": shim,
                                                "IMAGEQUEUE_TEST_CLOCK_SKEW_SECONDS": "3600"])
        defer { serve.send(SIGKILL) }
        var metrics = ""
        for _ in 0..<150 where !metrics.contains("imagequeue_workers_live ") {
            if let response = try? await HTTPClient().send(HTTPRequest(url: "http://127.0.0.1:\(port)/metrics")), response.status == 200 {
                metrics = String(decoding: response.body, as: UTF8.self)
            } else {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let live = metrics.split(separator: "\n").first { $0.hasPrefix("imagequeue_workers_live ") }
            .flatMap { Double($0.split(separator: " ").last ?? "") }
        #expect(live == 2, "\(metrics)\nserve output:\n\(serve.output)")

        for worker in workers {
            worker.process.send(SIGTERM)
            #expect(try await worker.process.waitForExit() == .exited(0), "\(worker.process.output)")
        }
    }
}

/// Builds Tests/Fakes/clock_skew.c into a shared object once per test process.
enum ClockSkewShim {
    static let compilerPath: String? = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    private static let built: Result<String, any Error> = Result {
        guard let compiler = compilerPath else { throw TestSetupError("no C compiler") }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fakes/clock_skew.c").standardizedFileURL.path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("imagequeue-clock-skew-\(getpid()).so").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: compiler)
        process.arguments = ["-shared", "-fPIC", "-O2", "-o", output, source, "-ldl", "-lpthread"]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestSetupError("\(compiler) could not build \(source)") }
        return output
    }

    static func build() throws -> String { try built.get() }

    /// The hour part of swift-log's stream timestamps ("2026-12-01T18:"), in local time as
    /// it writes them.
    static func logHour(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        localtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour)
    }
}
