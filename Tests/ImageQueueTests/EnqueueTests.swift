import ImageQueue
import RedisClient
import Testing
import TestSupport

@Suite(.runsClients) struct EnqueueTests {
    @Test func enqueueStoresTheJobAndReportsItsPosition() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let first = try await queue.enqueue("a lighthouse at dawn")
        let second = try await queue.enqueue("a red fox", user: "bob")
        #expect(first.status == .queued && first.position == 1 && first.created)
        #expect(second.position == 2)
        #expect(first.id.hasPrefix("flux-") && first.id.count == 5 + 26)

        let info = try await queue.client.inspector.status(first.id)
        #expect(info.prompt == "a lighthouse at dawn")
        #expect(info.user == "alice")
        #expect(info.status == .queued && info.position == 1 && info.attempt == 0)
        #expect(info.enqueuedAt != nil && info.startedAt == nil && info.finishedAt == nil)
        #expect(info.lastEvent?.status == .queued && info.lastEvent?.revision == 1)
    }

    @Test(arguments: [
        (JobRequest(model: "dalle", prompt: "x", user: "u"), ImageQueueError.Code.unknownModel),
        (JobRequest(model: "flux", prompt: "", user: "u"), .emptyPrompt),
        (JobRequest(model: "flux", prompt: "  \n\t ", user: "u"), .emptyPrompt),
        (JobRequest(model: "flux", prompt: String(repeating: "é", count: 2001), user: "u"), .promptTooLong),
        (JobRequest(model: "flux", prompt: "a\u{07}bell", user: "u"), .controlCharacters),
        (JobRequest(model: "flux", prompt: "esc\u{1B}[31m", user: "u"), .controlCharacters),
        (JobRequest(model: "flux", prompt: "fine", user: ""), .invalidUser),
        (JobRequest(model: "flux", prompt: "fine", user: "u", idempotencyKey: ""), .invalidRequest),
    ])
    func invalidRequestsAreRejectedBeforeAnythingIsWritten(request: JobRequest, code: ImageQueueError.Code) async throws {
        let queue = try QueueFixture(rateLimit: .init(requests: 10, window: .seconds(60)))
        defer { queue.close() }
        let error = await #expect(throws: ImageQueueError.self) { try await queue.client.enqueue(request) }
        #expect(error?.code == code)
        #expect(error?.isValidation == true)
        #expect(try await queue.allKeys().isEmpty)
    }

    @Test func aPromptAtTheLimitAndMultiLinePromptsAreAccepted() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let long = try await queue.enqueue(String(repeating: "é", count: 2000))
        let multiLine = try await queue.enqueue("line one\nline two\twith a tab")
        #expect(long.created && multiLine.created)
    }

    @Test func anIdempotencyKeyReturnsTheFirstJob() async throws {
        let queue = try QueueFixture(rateLimit: .init(requests: 1, window: .seconds(60)))
        defer { queue.close() }
        let first = try await queue.enqueue("same request", key: "req-42")
        let again = try await queue.enqueue("same request", key: "req-42")
        #expect(again.id == first.id)
        #expect(!again.created && again.status == .queued && again.position == 1)
        #expect(try await queue.client.inspector.stats()["flux"]?.pending == 1)
        // The repeat did not use up the user's one request: a new request is what is refused.
        let error = await #expect(throws: ImageQueueError.self) { try await queue.enqueue("another", key: "req-43") }
        #expect(error?.code == .rateLimited)
    }

    @Test func theRateLimitIsShardByProducersAndPerUser() async throws {
        let queue = try QueueFixture(rateLimit: .init(requests: 3, window: .seconds(60)))
        defer { queue.close() }
        let otherProducer = try runInTest(ImageQueueClient(redis: queue.redisConfiguration, configuration: queue.configuration))
        defer { otherProducer.close() }
        try await queue.enqueue("one")
        try await queue.enqueue("two")
        _ = try await otherProducer.enqueue(JobRequest(model: "sdxl", prompt: "three", user: "alice"))
        let error = await #expect(throws: ImageQueueError.self) {
            _ = try await otherProducer.enqueue(JobRequest(model: "flux", prompt: "four", user: "alice"))
        }
        #expect(error?.code == .rateLimited)
        let retryAfter = try #require(error?.retryAfter)
        #expect(retryAfter > .zero && retryAfter <= .seconds(60))
        #expect(error?.message.contains("try again in") == true)
        // Other users are not affected; the refused request was not queued.
        try await queue.enqueue("bob's", user: "bob")
        #expect(try await queue.client.inspector.stats()["flux"]?.pending == 3)
    }

    @Test func theWindowSlides() async throws {
        let queue = try QueueFixture(rateLimit: .init(requests: 2, window: .seconds(60)))
        defer { queue.close() }
        try await queue.enqueue("one")
        try await queue.enqueue("two")
        let refused = await #expect(throws: ImageQueueError.self) { try await queue.enqueue("three") }
        #expect(refused?.code == .rateLimited)
        // Age the window's oldest request past 60 s: one request may be made again, not two.
        let window = queue.keys.rateLimit(user: "alice")
        let oldest = try #require(try await queue.redis.send("ZRANGE", window, "0", "0").array?.first?.string)
        try await queue.redis.send("ZADD", window, "XX", "1", oldest)
        try await queue.enqueue("three")
        let again = await #expect(throws: ImageQueueError.self) { try await queue.enqueue("four") }
        #expect(again?.code == .rateLimited)
    }

    @Test func aBatchIsEnqueuedInOrderWithPerRequestErrors() async throws {
        let queue = try QueueFixture(rateLimit: .init(requests: 3, window: .seconds(60)))
        defer { queue.close() }
        let requests = [
            JobRequest(model: "flux", prompt: "first", user: "carol"),
            JobRequest(model: "nope", prompt: "bad model", user: "carol"),
            JobRequest(model: "flux", prompt: "second", user: "carol"),
            JobRequest(model: "sdxl", prompt: "third", user: "carol"),
            JobRequest(model: "flux", prompt: "fourth: over the limit", user: "carol"),
        ]
        let results = try await queue.client.enqueue(batch: requests)
        let codes = results.map { result -> String in
            switch result {
            case .success(let job): "ok:\(job.model):\(job.position ?? 0)"
            case .failure(let error): error.code.rawValue
            }
        }
        #expect(codes == ["ok:flux:1", "unknown_model", "ok:flux:2", "ok:sdxl:1", "rate_limited"])
    }

    @Test func aLargeBatchGoesInFewScriptCallsAndKeepsItsOrder() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        var requests: [JobRequest] = []
        for n in 0..<1_100 {
            requests.append(JobRequest(model: "flux", prompt: "job \(n)", user: "u\(n % 7)"))
            if n % 400 == 0 { requests.append(JobRequest(model: "sdxl", prompt: "other \(n)", user: "v")) }
        }
        requests.append(JobRequest(model: "flux", prompt: "keyed", user: "k", idempotencyKey: "batch-key"))
        requests.append(JobRequest(model: "flux", prompt: "keyed again", user: "k", idempotencyKey: "batch-key"))
        let results = try await queue.client.enqueue(batch: requests)
        let jobs = try results.map { try $0.get() }
        #expect(jobs.count == requests.count)
        let flux = jobs.filter { $0.model == "flux" }
        // Positions 1...n in the order given; the repeated key answers the keyed job.
        #expect(flux.dropLast().map { $0.position ?? 0 } == Array(1...1_101))
        #expect(flux.last?.id == flux.dropLast().last?.id && flux.last?.created == false)
        #expect(jobs.filter { $0.model == "sdxl" }.map { $0.position ?? 0 } == [1, 2, 3])
        let pending = try await queue.redis.send("ZRANGE", queue.keys.pending("flux"), "0", "-1").array?.compactMap(\.string)
        #expect(pending == flux.dropLast().map(\.id))
        // One script call per 500 jobs of a model: each call reads the clock once, so the 1,100
        // unkeyed flux jobs carry at most three different enqueue times.
        var times = Set<Int64>()
        for job in flux.prefix(1_100) {
            times.insert(try await queue.redis.send("HGET", queue.keys.job(try JobID(job.id)), "enqueued_at").int ?? -1)
        }
        #expect(times.count <= 3 && !times.contains(-1), "\(times.count) enqueue times")
    }

    @Test func positionIsExactAsJobsAreClaimedAndCancelled() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        try await queue.client.setConcurrency(10, model: "flux")
        var ids: [String] = []
        for index in 0..<6 { ids.append(try await queue.enqueue("job \(index)").id) }
        for (index, id) in ids.enumerated() { #expect(try await queue.client.inspector.position(id) == index + 1) }

        let worker = queue.worker()
        defer { worker.close() }
        let claimed = try await queue.claim(worker)
        #expect(claimed.id == ids[0])
        #expect(try await queue.client.inspector.position(ids[0]) == nil)
        try await queue.client.cancel(ids[3])
        let expected: [String: Int?] = [ids[1]: 1, ids[2]: 2, ids[3]: nil, ids[4]: 3, ids[5]: 4]
        for (id, position) in expected { #expect(try await queue.client.inspector.position(id) == position) }
        #expect(try await queue.client.inspector.status(ids[4]).position == 3)
        #expect(try await queue.client.inspector.status(ids[0]).position == nil)
    }

    @Test func cancelStopsQueuedAndRunningJobsButNotFinishedOnes() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let running = try await queue.enqueue("will run")
        let waiting = try await queue.enqueue("will be cancelled")
        let finished = try await queue.enqueue("will finish")
        let worker = queue.worker()
        defer { worker.close() }
        let job = try await queue.claim(worker)
        #expect(job.id == running.id)

        #expect(try await queue.client.cancel(waiting.id) == .wasQueued)
        let cancelled = try await queue.client.inspector.status(waiting.id)
        #expect(cancelled.status == .cancelled && cancelled.finishedAt != nil && cancelled.position == nil)
        #expect(try await queue.redis.send("PTTL", queue.keys.job(try JobID(waiting.id))).int ?? -1 > 0)

        // A running job: cancelled at once, its slot freed, its worker told on the model's
        // cancel channel, and every later call of that worker refused as cancelled.
        let subscriber = runInTest(RedisSubscriber(configuration: queue.redisConfiguration))
        let messages = try await subscriber.subscribe([queue.keys.cancellations("flux")])
        #expect(try await queue.client.cancel(running.id) == .wasRunning)
        var iterator = messages.makeAsyncIterator()
        #expect(await iterator.next() == .message(channel: queue.keys.cancellations("flux"), payload: Array(running.id.utf8)))
        let stopped = try await queue.client.inspector.status(running.id)
        #expect(stopped.status == .cancelled && stopped.finishedAt != nil)
        #expect(try await queue.redis.send("ZSCORE", queue.keys.active("flux"), running.id).isNull)
        let late = await #expect(throws: ImageQueueError.self) { try await worker.complete(job, result: JobResult(contentType: "image/png", bytes: 1, store: "directory", path: "/x.png")) }
        #expect(late?.code == .cancelled)
        let heartbeat = await #expect(throws: ImageQueueError.self) { try await worker.heartbeat(job, lease: .seconds(30)) }
        #expect(heartbeat?.code == .cancelled)
        #expect(try await queue.client.inspector.status(running.id).status == .cancelled)

        // The freed slot hands out the next job; a finished job cannot be cancelled.
        let next = try await queue.claim(worker)
        #expect(next.id == finished.id)
        try await worker.complete(next, result: JobResult(contentType: "image/png", bytes: 1, store: "directory", path: "/y.png"))
        let done = await #expect(throws: ImageQueueError.self) { try await queue.client.cancel(finished.id) }
        #expect(done?.code == .notQueued && done?.message.contains("completed") == true)
        let again = await #expect(throws: ImageQueueError.self) { try await queue.client.cancel(waiting.id) }
        #expect(again?.code == .notQueued)
        let unknown = await #expect(throws: ImageQueueError.self) { try await queue.client.cancel("flux-doesnotexist") }
        #expect(unknown?.code == .notFound)
        let garbage = await #expect(throws: ImageQueueError.self) { try await queue.client.cancel("not an id") }
        #expect(garbage?.code == .invalidJobID)
    }
}
