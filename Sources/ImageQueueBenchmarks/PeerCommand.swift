import ImageQueue
import RedisClient

/// `peer enqueue N` / `peer bulk N`: ImageQueue's enqueue side for the shared peers harness.
/// The harness FLUSHALLs before each phase, so the model's concurrency limit is set here; only
/// the enqueue loop is timed, and the last line is `{"seconds": ...}` as the harness expects.
enum PeerCommand {
    static func run(_ options: PeerOptions) async throws {
        let client = try makeClient(try RedisConfiguration(url: options.redisURL), prefix: options.prefix)
        try await withRunning([client]) {
            try await client.setConcurrency(options.concurrency, model: "flux")
            let clock = ContinuousClock()
            let count = options.count
            let elapsed: Duration
            switch options.mode {
            case .enqueue:
                elapsed = try await clock.measure {
                    for _ in 0..<count {
                        _ = try await client.enqueue(JobRequest(model: "flux", prompt: "noop", user: "bench", enhance: false))
                    }
                }
            case .bulk:
                // Batches of 1000, one after another, as Sidekiq's push_bulk does by default.
                elapsed = try await clock.measure {
                    var sent = 0
                    while sent < count {
                        let size = min(1000, count - sent)
                        let requests = (0..<size).map { _ in JobRequest(model: "flux", prompt: "noop", user: "bench", enhance: false) }
                        for result in try await client.enqueue(batch: requests) {
                            if case .failure(let error) = result { throw BenchError("enqueue failed: \(error)") }
                        }
                        sent += size
                    }
                }
            }
            print("{\"mode\": \"\(options.mode.rawValue)\", \"n\": \(count), \"seconds\": \(elapsed.seconds)}")
        }
    }
}
