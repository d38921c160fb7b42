import ImageQueue
import RedisClient

/// Enqueue jobs/s: one call at a time (each awaited), then `enqueue(batch:)` 100 per call.
enum EnqueueSection {
    static func run(_ context: BenchContext) async throws {
        let prefix = freshPrefix("enqueue")
        let client = try makeClient(context.redisConfiguration, prefix: prefix)
        try await withRunning([client]) {
            let jobs = context.options.jobs
            let clock = ContinuousClock()
            progress("enqueue: \(jobs) jobs one at a time, then in batches of 100")

            // Warm up: the script is loaded and the connection open before the clock starts.
            _ = try await client.enqueue(JobRequest(model: "sdxl", prompt: "warm-up", user: "bench", enhance: false))

            var redisBefore = context.redisCPU()
            let single = try await clock.measure {
                for index in 0..<jobs {
                    _ = try await client.enqueue(JobRequest(model: "flux", prompt: "benchmark prompt \(index)", user: "bench", enhance: false))
                }
            }
            let singleRedis = context.redisCPU().map { $0 - (redisBefore ?? 0) }
            let singleRate = Double(jobs) / single.seconds
            context.report.add(Row(figure: "enqueue jobs/s, one call at a time (awaited)", value: grouped(singleRate) + "/s",
                                   reference: context.ceilings.eval.map { fixed(singleRate / $0 * 100, 0) + " % of " + context.ceilings.evalText } ?? context.ceilings.evalText))
            if let singleRedis {
                context.report.add(Row(figure: "Redis CPU µs per enqueue (one at a time)", value: fixed(singleRedis / Double(jobs) * 1e6, 1) + " µs"))
            }

            let batchSize = 100
            let batches = jobs / batchSize
            redisBefore = context.redisCPU()
            let batched = try await clock.measure {
                for batch in 0..<batches {
                    let requests = (0..<batchSize).map {
                        JobRequest(model: "sdxl", prompt: "benchmark prompt \(batch)-\($0)", user: "bench", enhance: false)
                    }
                    for result in try await client.enqueue(batch: requests) {
                        if case .failure(let error) = result { throw BenchError("batched enqueue failed: \(error)") }
                    }
                }
            }
            let batchedRedis = context.redisCPU().map { $0 - (redisBefore ?? 0) }
            let total = batches * batchSize
            let batchedRate = Double(total) / batched.seconds
            context.report.add(Row(figure: "enqueue jobs/s, `enqueue(batch:)` 100 per call", value: grouped(batchedRate) + "/s",
                                   reference: fixed(batchedRate / singleRate, 1) + "× one at a time"))
            if let batchedRedis {
                context.report.add(Row(figure: "Redis CPU µs per enqueue (batched)", value: fixed(batchedRedis / Double(total) * 1e6, 1) + " µs"))
            }
            context.report.note("enqueue: rate limit off (when on, it adds one script call per job).")
            try await context.probe.deleteKeys(prefix: prefix, flush: false)
        }
    }
}
