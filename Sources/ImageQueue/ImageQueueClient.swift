import FoundationEssentials
import Logging
import RedisClient
import ServiceLifecycle

/// The producer side of ImageQueue: enqueue, cancel, watch, and the operator's changes
/// (concurrency, dead-list retry and purge). Read-only questions go to `inspector`.
///
/// Safe to share between tasks; commands from concurrent callers are pipelined on one
/// connection. A `Service`: its connections live while `run()` runs (`with(redis:…)` runs
/// one around a closure).
public final class ImageQueueClient: ClosableService {
    /// The settings this client validates and enqueues with.
    public let configuration: QueueConfiguration
    /// Read-only inspection on the same connection.
    public let inspector: QueueInspector
    let runner: ScriptRunner
    private let redisConfiguration: RedisConfiguration
    private let subscriber: RedisSubscriber
    private let logger: Logger

    /// Creates a client for a Redis server.
    /// - Throws: `ImageQueueError` `.invalidRequest` for an invalid configuration.
    public init(redis redisConfiguration: RedisConfiguration, configuration: QueueConfiguration = QueueConfiguration(),
                logger: Logger = Logger(label: "imagequeue.client")) throws(ImageQueueError) {
        try configuration.validate()
        self.configuration = configuration
        self.redisConfiguration = redisConfiguration
        self.logger = logger
        let connection = makeRedisClient(configuration: redisConfiguration, logger: logger)
        runner = ScriptRunner(redis: connection, keys: configuration.keys)
        inspector = QueueInspector(redis: connection, configuration: configuration)
        subscriber = RedisSubscriber(configuration: redisConfiguration, logger: logger)
    }

    /// Checks, on this client's own connection, that Redis accepts the credentials and is
    /// the kind of server the URL says (`RedisClientProtocol.verifyEndpoint`).
    /// - Throws: `RedisError`: `.authentication`, `.misconfigured`, or a connection error.
    public func verifyServer() async throws {
        try await runner.redis.verifyEndpoint()
    }

    /// Whether the configuration finds the master through Sentinel.
    public var usesSentinel: Bool { redisConfiguration.sentinel != nil }

    /// With a Sentinel configuration, the master this process uses and its last move seen
    /// (nil before the first connect).
    public var sentinelMaster: SentinelMaster? { redisConfiguration.sentinel.flatMap { SentinelMaster.known($0.masterName) } }

    /// Checks that Redis answers, on this client's connection (readiness probes).
    /// - Throws: `ImageQueueError` `.redis`.
    public func ping() async throws(ImageQueueError) {
        _ = try await runRaw(RedisCommand("PING"), operation: "ping")
    }

    /// Makes a client, runs it while `body` runs, and stops it after: the one-shot path.
    /// - Throws: `ImageQueueError` `.invalidRequest` for an invalid configuration; what `body` throws.
    public static func with<Result>(redis redisConfiguration: RedisConfiguration,
                                    configuration: QueueConfiguration = QueueConfiguration(),
                                    logger: Logger = Logger(label: "imagequeue.client"),
                                    isolation: isolated (any Actor)? = #isolation,
                                    _ body: (ImageQueueClient) async throws -> Result) async throws -> Result {
        let client = try ImageQueueClient(redis: redisConfiguration, configuration: configuration, logger: logger)
        return try await withRunning([client]) { try await body(client) }
    }

    /// Runs the command connection and the subscriber until the task is cancelled or
    /// `close()` is called (graceful shutdown is left to the services using the client).
    /// Call it once.
    /// - Throws: the first error a connection's `run()` throws.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.runner.redis.run() }
            group.addTask { try await self.subscriber.run() }
        }
    }

    /// Ends `run()`: the connections close, and calls still queued fail.
    public func close() {
        runner.redis.close()
        subscriber.close()
    }

    // MARK: - Enqueue

    /// Validates, rate-limits and enqueues one job.
    /// - Throws: `ImageQueueError`: a validation code (nothing written), `.rateLimited` with
    ///   `retryAfter`, `.queueFull` (the model's backlog is at `maxPending`), `.redisFull`
    ///   (Redis at maxmemory: nothing queued), or `.redis`.
    public func enqueue(_ request: JobRequest) async throws(ImageQueueError) -> EnqueuedJob {
        try request.validate(against: configuration)
        try await checkWebhookAddresses(request)
        return try await enqueue(request, id: JobID.make(model: request.model))
    }

    /// The DNS half of the webhook check (`WebhookTarget`): every address the URL's name
    /// resolves to must be public (or the host allow-listed); a name that does not resolve
    /// now is accepted (each delivery checks again, and retries while it does not resolve). getaddrinfo blocks, so it runs on
    /// a thread of its own, never on one of the cooperative pool's few threads.
    /// - Throws: `ImageQueueError` `.invalidWebhook`.
    private func checkWebhookAddresses(_ request: JobRequest) async throws(ImageQueueError) {
        guard let url = request.webhookURL else { return }
        let allowed = configuration.webhookAllowHosts
        let check: @Sendable () -> ImageQueueError? = {
            do throws(ImageQueueError) {
                _ = try WebhookTarget(url, allowHosts: allowed, resolve: true, acceptUnresolved: true)
                return nil
            } catch {
                return error
            }
        }
        if let refusal = await WebhookTarget.offCooperativeThreads(check) { throw refusal }
    }

    /// Enqueues and follows the job from its very first event: the job's channel is
    /// subscribed before the job exists, so no stage is missed however fast a worker is
    /// (`watch` after `enqueue` starts from the job's current state). For a repeated
    /// idempotency key the stream follows the existing job from its current state.
    /// - Throws: as `enqueue`; the stream as `watch`.
    public func enqueueAndWatch(_ request: JobRequest) async throws(ImageQueueError)
        -> (job: EnqueuedJob, events: AsyncThrowingStream<StatusEvent, any Error>) {
        try request.validate(against: configuration)
        try await checkWebhookAddresses(request)
        let id = JobID.make(model: request.model)
        let messages = try await subscribe(id)
        let job = try await enqueue(request, id: id)
        guard job.id == id.rawValue else { return (job, watch(job.id)) }
        return (job, follow(id, messages: messages, fromStart: true))
    }

    private func enqueue(_ request: JobRequest, id: JobID) async throws(ImageQueueError) -> EnqueuedJob {
        let repeated = try await isRepeat(request)
        if !repeated, let limit = configuration.rateLimit {
            let reply = try await runRaw(rateLimitCommand(request, id: id, limit: limit), operation: "rate limit")
            if let refusal = Self.rateLimitRefusal(reply, user: request.user) { throw refusal }
        }
        let reply = try await runRaw(enqueueCommand(request, id: id), operation: "enqueue")
        return try Self.parseEnqueued(reply, model: request.model)
    }

    /// Enqueues many jobs in two round trips (rate limits, then enqueues); each request
    /// gets its own result, so one bad request does not stop the others.
    /// - Throws: `ImageQueueError` `.redis` only when Redis fails as a whole.
    public func enqueue(batch requests: [JobRequest]) async throws(ImageQueueError) -> [Result<EnqueuedJob, ImageQueueError>] {
        var results = [Result<EnqueuedJob, ImageQueueError>?](repeating: nil, count: requests.count)
        var accepted: [(index: Int, id: JobID)] = []
        for (index, request) in requests.enumerated() {
            do throws(ImageQueueError) {
                try request.validate(against: configuration)
                try await checkWebhookAddresses(request)
                accepted.append((index, JobID.make(model: request.model)))
            } catch {
                results[index] = .failure(error)
            }
        }
        if let limit = configuration.rateLimit, !accepted.isEmpty {
            let replies = try await pipeline(accepted.map { rateLimitCommand(requests[$0.index], id: $0.id, limit: limit) },
                                             operation: "rate limit")
            var allowed: [(index: Int, id: JobID)] = []
            for (entry, reply) in zip(accepted, replies) {
                if let failure = ScriptRunner.mapReply(reply, operation: "rate limit", jobID: nil)
                    ?? Self.rateLimitRefusal(reply, user: requests[entry.index].user) {
                    results[entry.index] = .failure(failure)
                } else {
                    allowed.append(entry)
                }
            }
            accepted = allowed
        }
        if !accepted.isEmpty {
            // One enqueueJob call per model and up to `enqueueBatchSize` jobs (a request with an
            // idempotency key goes alone: the key is the call's KEYS[9]), all in one pipeline.
            var calls: [[(index: Int, id: JobID)]] = []
            var open: [String: Int] = [:]
            for entry in accepted {
                let request = requests[entry.index]
                if request.idempotencyKey == nil, let call = open[request.model], calls[call].count < Self.enqueueBatchSize {
                    calls[call].append(entry)
                } else {
                    if request.idempotencyKey == nil { open[request.model] = calls.count }
                    calls.append([entry])
                }
            }
            let replies = try await pipeline(calls.map { enqueueCommand(requests, $0) }, operation: "enqueue")
            for (call, reply) in zip(calls, replies) {
                // One job: its reply; several: an array of replies, one per job in order.
                let perJob = call.count == 1 ? [reply] : (reply.array ?? [])
                if perJob.count != call.count, let failure = ScriptRunner.mapReply(reply, operation: "enqueue", jobID: nil) {
                    for entry in call { results[entry.index] = .failure(failure) }
                    continue
                }
                for (n, entry) in call.enumerated() {
                    guard n < perJob.count else {
                        results[entry.index] = .failure(ImageQueueError(.malformed, "unexpected reply from enqueueJob: \(reply)"))
                        continue
                    }
                    let reply = perJob[n]
                    if let failure = ScriptRunner.mapReply(reply, operation: "enqueue", jobID: entry.id.rawValue) {
                        results[entry.index] = .failure(failure)
                    } else {
                        results[entry.index] = Result { () throws(ImageQueueError) in
                            try Self.parseEnqueued(reply, model: requests[entry.index].model)
                        }
                    }
                }
            }
        }
        return results.map { $0! }
    }

    /// The most jobs one enqueueJob call carries in `enqueue(batch:)`: a script call blocks
    /// Redis while it runs, so a large batch is cut into calls of this size (each about 10 ms
    /// of Redis time at 1,000 jobs, measured at about 120k instructions per job).
    static let enqueueBatchSize = 500

    private func isRepeat(_ request: JobRequest) async throws(ImageQueueError) -> Bool {
        guard let key = request.idempotencyKey else { return false }
        let reply = try await runRaw(RedisCommand("EXISTS", runner.keys.idempotency(request.model, key: key)),
                                     operation: "idempotency check")
        return reply.int == 1
    }

    private func rateLimitCommand(_ request: JobRequest, id: JobID, limit: QueueConfiguration.RateLimit) -> RedisCommand {
        .script(QueueScripts.checkRateLimit, keys: [runner.keys.rateLimit(user: request.user)],
                arguments: [limit.requests, limit.window.wholeMilliseconds, id.rawValue])
    }

    private func enqueueCommand(_ request: JobRequest, id: JobID) -> RedisCommand {
        enqueueCommand([request], [(0, id)])
    }

    /// One enqueueJob call for `entries` (requests of one model; an idempotency key only on a
    /// call of one): the first job in ARGV[3...4], the others as (id, request) pairs from ARGV[8].
    private func enqueueCommand(_ requests: [JobRequest], _ entries: [(index: Int, id: JobID)]) -> RedisCommand {
        let encoder = JSONEncoder()
        func payload(_ request: JobRequest) -> [UInt8] {
            (try? encoder.encode(JobPayload(request))).map { Array($0) } ?? []
        }
        let first = requests[entries[0].index]
        var extraKeys: [String] = []
        if let key = first.idempotencyKey { extraKeys.append(runner.keys.idempotency(first.model, key: key)) }
        var arguments: [any RedisArgument] = [entries[0].id.rawValue, payload(first), configuration.maxAttempts,
                                              configuration.idempotencyTTL.wholeMilliseconds, configuration.maxPending ?? 0]
        for entry in entries.dropFirst() {
            arguments.append(entry.id.rawValue)
            arguments.append(payload(requests[entry.index]))
        }
        return runner.command(QueueScripts.enqueueJob, model: first.model, extraKeys: extraKeys, arguments: arguments)
    }

    private static func rateLimitRefusal(_ reply: RESPValue, user: String) -> ImageQueueError? {
        guard let parts = reply.array, parts.count == 3, parts[0].int == 0 else { return nil }
        let retry = Duration.milliseconds(parts[2].int ?? 1000)
        let seconds = (retry.wholeMilliseconds + 999) / 1000
        var error = ImageQueueError(.rateLimited, "too many requests from user \(user.prefix(64)); try again in \(seconds) s")
        error.retryAfter = retry
        return error
    }

    static func parseEnqueued(_ reply: RESPValue, model: String) throws(ImageQueueError) -> EnqueuedJob {
        guard let parts = reply.array, parts.count == 4, let id = parts[0].string,
              let status = parts[1].string.flatMap(JobStatus.init(rawValue:)) else {
            throw ImageQueueError(.malformed, "unexpected reply from enqueueJob: \(reply)")
        }
        let position = Int(parts[2].int ?? 0)
        return EnqueuedJob(id: id, model: model, status: status, position: position > 0 ? position : nil,
                           created: parts[3].int == 1)
    }

    // MARK: - Changes to jobs and queues

    /// What a cancel stopped.
    public enum CancelOutcome: String, Sendable {
        /// The job was waiting: it left the queue.
        case wasQueued = "queued"
        /// A worker was running it: its lease is gone and its slot free at once; the worker
        /// learns it within about a second (a control message, and its next heartbeat as a
        /// backstop), stops its backend call, and anything it records later is refused.
        case wasRunning = "running"
    }

    /// Cancels a job that is queued or running; it ends `cancelled` (terminal, never retried).
    /// - Throws: `ImageQueueError` `.notFound`, `.notQueued` (it has already finished: the
    ///   message says how), `.redis`.
    @discardableResult
    public func cancel(_ id: String) async throws(ImageQueueError) -> CancelOutcome {
        let jobID = try JobID(id)
        let keys = runner.keys
        let reply = try await runner.run(QueueScripts.cancelJob, model: jobID.model,
                                         arguments: [jobID.rawValue, configuration.retention.wholeMilliseconds,
                                                     keys.cancellations(jobID.model), keys.preview(jobID)], jobID: id)
        return reply.int == 2 ? .wasRunning : .wasQueued
    }

    /// Sets how many jobs of a model may run at once across every worker.
    /// - Throws: `ImageQueueError` `.unknownModel`, `.invalidRequest` (below 1), `.redis`.
    public func setConcurrency(_ limit: Int, model: String) async throws(ImageQueueError) {
        try configuration.requireModel(model)
        guard limit >= 1 else { throw ImageQueueError(.invalidRequest, "concurrency must be at least 1") }
        _ = try await runner.run(QueueScripts.setConcurrency, model: model, arguments: [limit])
    }

    /// Pauses a model for every worker on every host: no job of it is claimed until
    /// `resume`; jobs already running finish, and enqueue still accepts. Returns false when
    /// it was already paused.
    /// - Throws: `ImageQueueError` `.unknownModel`, `.redis`.
    @discardableResult
    public func pause(model: String) async throws(ImageQueueError) -> Bool {
        try await setPaused(true, model: model)
    }

    /// Resumes a paused model: an idle worker starts its next job at once. Returns false when
    /// it was not paused.
    /// - Throws: `ImageQueueError` `.unknownModel`, `.redis`.
    @discardableResult
    public func resume(model: String) async throws(ImageQueueError) -> Bool {
        try await setPaused(false, model: model)
    }

    private func setPaused(_ paused: Bool, model: String) async throws(ImageQueueError) -> Bool {
        try configuration.requireModel(model)
        return try await runner.run(QueueScripts.setPaused, model: model, arguments: [paused ? "1" : "0"]).int == 1
    }

    /// Puts dead jobs back in their queue (at the tail, attempts reset): one job, or all.
    /// Returns how many were put back.
    /// - Throws: `ImageQueueError` `.notFound` (an id not in the dead list), `.redis`.
    @discardableResult
    public func retryDead(model: String, id: String? = nil) async throws(ImageQueueError) -> Int {
        try await drainDead(QueueScripts.retryDead, model: model, id: id)
    }

    /// Deletes dead jobs for good: one job, or all. Returns how many were deleted.
    /// - Throws: `ImageQueueError` `.notFound` (an id not in the dead list), `.redis`.
    @discardableResult
    public func purgeDead(model: String, id: String? = nil) async throws(ImageQueueError) -> Int {
        try await drainDead(QueueScripts.purgeDead, model: model, id: id)
    }

    /// Runs a dead-list script in batches of 500 until the list is done (or the one id is).
    private func drainDead(_ script: RedisScript, model: String, id: String?) async throws(ImageQueueError) -> Int {
        try configuration.requireModel(model)
        var total = 0
        while true {
            let reply = try await runner.run(script, model: model, arguments: [id ?? "", 500], jobID: id)
            let count = Int(reply.int ?? 0)
            total += count
            if id != nil || count < 500 { return total }
        }
    }

    // MARK: - Watching

    /// The job's events: its current state first, then every change, ending after a
    /// terminal status. Subscribes before reading, so no change is missed; after a Redis
    /// reconnect the stored state is read again, so the terminal event is never lost.
    /// - Throws (from the stream): `ImageQueueError` `.notFound`, `.invalidJobID`, `.redis`.
    public func watch(_ id: String) -> AsyncThrowingStream<StatusEvent, any Error> {
        do {
            let jobID = try JobID(id)
            return events { continuation in
                let messages = try await self.subscribe(jobID)
                try await self.run(jobID, messages: messages, fromStart: false, into: continuation)
            }
        } catch {
            return AsyncThrowingStream { $0.finish(throwing: error) }
        }
    }

    private func subscribe(_ id: JobID) async throws(ImageQueueError) -> AsyncStream<SubscriptionEvent> {
        do {
            return try await subscriber.subscribe([runner.keys.events(id)])
        } catch {
            throw ImageQueueError.redis(error, operation: "subscribe", jobID: id.rawValue)
        }
    }

    private func follow(_ id: JobID, messages: AsyncStream<SubscriptionEvent>, fromStart: Bool) -> AsyncThrowingStream<StatusEvent, any Error> {
        events { continuation in
            try await self.run(id, messages: messages, fromStart: fromStart, into: continuation)
        }
    }

    /// A stream of the events `produce` yields, finished when it returns or throws.
    ///
    /// `produce` runs in a task of its own: a stream handed to the caller has no scope to be
    /// a child of. The stream owns that task: it is cancelled when the consumer stops
    /// iterating or drops the stream (`onTermination`), and it ends the stream when it ends.
    private func events(_ produce: @escaping @Sendable (AsyncThrowingStream<StatusEvent, any Error>.Continuation) async throws -> Void)
        -> AsyncThrowingStream<StatusEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await produce(continuation)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Yields the job's events until a terminal one. `fromStart`: the subscription was made
    /// before the job existed, so its messages hold every event; otherwise the stored state
    /// comes first. Either way the stored state is read again after a Redis reconnect, and
    /// events already seen (by revision) are dropped.
    private func run(_ id: JobID, messages: AsyncStream<SubscriptionEvent>, fromStart: Bool,
                     into continuation: AsyncThrowingStream<StatusEvent, any Error>.Continuation) async throws {
        var seen: Int64 = -1
        func emit(_ event: StatusEvent) -> Bool {
            guard event.revision > seen else { return false }
            seen = event.revision
            continuation.yield(event)
            return event.status.isTerminal
        }
        if !fromStart, try await emit(storedEvent(id)) { return }
        for await message in messages {
            try Task.checkCancellation()
            switch message {
            case .message(_, let payload):
                guard let event = try? StatusEvent(json: payload) else {
                    logger.warning("ignoring a malformed status event", metadata: ["job.id": "\(id)"])
                    continue
                }
                if emit(event) { return }
            case .resubscribed:
                if try await emit(storedEvent(id)) { return }
            }
        }
        throw CancellationError()
    }

    /// The job's current state as an event: the one stored on the job, or for a job never
    /// claimed (enqueueJob does not store its `queued` event) that event built from its fields.
    private func storedEvent(_ id: JobID) async throws(ImageQueueError) -> StatusEvent {
        let info = try await inspector.status(id.rawValue)
        guard let event = info.lastEvent else {
            throw ImageQueueError(.malformed, "job \(id) has no stored event in Redis", jobID: id.rawValue)
        }
        return event
    }

    // MARK: - Plumbing

    private func runRaw(_ command: RedisCommand, operation: String) async throws(ImageQueueError) -> RESPValue {
        do {
            return try await runner.redis.send(command)
        } catch {
            throw ScriptRunner.mapError(error, operation: operation, jobID: nil)
        }
    }

    private func pipeline(_ commands: [RedisCommand], operation: String) async throws(ImageQueueError) -> [RESPValue] {
        do {
            return try await runner.redis.pipeline(commands)
        } catch {
            throw ImageQueueError.redis(error, operation: operation)
        }
    }
}
