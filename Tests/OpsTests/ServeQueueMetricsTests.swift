import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The serve metrics the alerts need: live workers per model, and whether Redis answers.
@Suite("ops: serve's per-model worker count and Redis-up metric")
struct ServeQueueMetricsTests {
    @Test("imagequeue_queue_workers_live counts the workers of each model; imagequeue_redis_up is 1, then 0 with a 200 while Redis is stopped, then 1")
    func workersPerModelAndRedisUp() async throws {
        // A Redis of this test's own, to stop.
        let redis = try await RedisServer.launch()
        let cli = try QueueCLI(redisURL: redis.url, label: "opsup")
        defer { cli.removeOutputDirectory() }
        let serve = try await startServe(cli)
        defer { serve.process.send(SIGKILL) }

        let empty = Exposition(try await poll(serve.baseURL + "/metrics"))
        #expect(empty.value("imagequeue_queue_workers_live", ["model": "flux"]) == 0, "\(empty.text)")
        #expect(empty.value("imagequeue_queue_workers_live", ["model": "sdxl"]) == 0, "\(empty.text)")
        #expect(empty.value("imagequeue_redis_up") == 1, "\(empty.text)")
        #expect(empty.families["imagequeue_queue_workers_live"] == "gauge" && empty.families["imagequeue_redis_up"] == "gauge",
                "\(empty.families)")

        var workers: [SpawnedProcess] = []
        for (name, models) in [("a", "flux"), ("b", "flux,sdxl")] {
            workers.append(try cli.startWorker(["--models", models, "--backend", "placeholder", "--output-dir", cli.outputDirectory(),
                                                "--id", "\(cli.prefix)-\(name)"]))
        }
        defer { for worker in workers { worker.send(SIGKILL) } }
        let registered = Exposition(try await poll(serve.baseURL + "/metrics") {
            Exposition($0).value("imagequeue_workers_live") == 2
        })
        #expect(registered.value("imagequeue_workers_live") == 2, "\(registered.text)")
        #expect(registered.value("imagequeue_queue_workers_live", ["model": "flux"]) == 2, "\(registered.text)")
        #expect(registered.value("imagequeue_queue_workers_live", ["model": "sdxl"]) == 1, "\(registered.text)")

        await redis.stop()
        let down = try #require(await fetch(serve.baseURL + "/metrics"), "serve stopped answering")
        #expect(down.status == 200, "\(down)")
        let downMetrics = Exposition(down.text)
        #expect(downMetrics.value("imagequeue_redis_up") == 0, "\(down.text)")
        // Nothing read from Redis is made up while it is away.
        #expect(downMetrics.families.keys.sorted() == ["imagequeue_redis_up"], "\(down.text)")

        try await redis.start()
        let back = Exposition(try await poll(serve.baseURL + "/metrics") { Exposition($0).value("imagequeue_redis_up") == 1 })
        #expect(back.value("imagequeue_redis_up") == 1, "\(back.text)")

        for worker in workers {
            worker.send(SIGTERM)
            _ = try await worker.waitForExit()
        }
    }
}
