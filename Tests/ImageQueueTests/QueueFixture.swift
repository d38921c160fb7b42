import ImageQueue
import RedisClient
import TestSupport

/// A producer, a worker side and a raw connection on one Redis, under a key prefix no
/// other test uses.
struct QueueFixture {
    let configuration: QueueConfiguration
    let redisConfiguration: RedisConfiguration
    let client: ImageQueueClient
    let redis: RedisConnection
    var keys: QueueKeys { configuration.keys }

    init(url: String? = nil, rateLimit: QueueConfiguration.RateLimit? = nil, maxAttempts: Int = 3,
         configure: (inout QueueConfiguration) -> Void = { _ in },
         configureRedis: (inout RedisConfiguration) -> Void = { _ in }) throws {
        var configuration = QueueConfiguration()
        configuration.keyPrefix = TestEnvironment.uniquePrefix()
        configuration.rateLimit = rateLimit
        configuration.maxAttempts = maxAttempts
        configure(&configuration)
        self.configuration = configuration
        // Named after the prefix, so a test can find its own connections in CLIENT LIST.
        var redisConfiguration = try RedisConfiguration(url: url ?? TestEnvironment.redisURL(), clientName: configuration.keyPrefix)
        configureRedis(&redisConfiguration)
        self.redisConfiguration = redisConfiguration
        client = try runInTest(ImageQueueClient(redis: redisConfiguration, configuration: configuration))
        redis = runInTest(RedisConnection(configuration: redisConfiguration))
    }

    /// A worker side with its own connections.
    func worker(_ id: String = "w1", blockTimeout: Duration = .seconds(2)) -> WorkerQueue {
        runInTest(WorkerQueue(redis: redisConfiguration, configuration: configuration, workerID: id, blockTimeout: blockTimeout))
    }

    @discardableResult
    func enqueue(_ prompt: String, model: String = "flux", user: String = "alice", enhance: Bool = true,
                 key: String? = nil) async throws -> EnqueuedJob {
        try await client.enqueue(JobRequest(model: model, prompt: prompt, user: user, enhance: enhance, idempotencyKey: key))
    }

    /// Claims and unwraps, failing the test when nothing is claimed.
    func claim(_ worker: WorkerQueue, model: String = "flux", lease: Duration = .seconds(30)) async throws -> ClaimedJob {
        let outcome = try await worker.claim(model: model, lease: lease)
        guard case .claimed(let job) = outcome else { throw TestSetupError("expected a claim, got \(outcome)") }
        return job
    }

    /// Moves a job's lease deadline into the past, as if its worker had stopped
    /// heartbeating long ago (no waiting on the clock in tests).
    func expireLease(of id: String) async throws {
        let model = try JobID(id).model
        try await redis.send("ZADD", keys.active(model), "XX", "1", id)
    }

    /// Every key under this fixture's prefix.
    func allKeys() async throws -> [String] {
        try await redis.send("KEYS", "\(configuration.keyPrefix):*").array?.compactMap(\.string) ?? []
    }

    func hash(_ id: String) async throws -> [String: String] {
        let reply = try await redis.send("HGETALL", keys.job(try JobID(id)))
        var hash: [String: String] = [:]
        let items = reply.array ?? []
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            hash[items[index].string ?? ""] = items[index + 1].string
        }
        return hash
    }

    func close() {
        client.close()
        redis.close()
    }
}

let sampleResult = JobResult(contentType: "image/png", bytes: 1234, store: "directory", path: "/tmp/x.png")
