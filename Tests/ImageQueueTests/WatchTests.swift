import ImageQueue
import RedisClient
import Synchronization
import Testing
import TestSupport

@Suite(.runsClients) struct WatchTests {
    @Test func aLateWatcherSeesTheCurrentStateAndEnds() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let job = try await queue.enqueue("done before anyone watched")
        let worker = queue.worker()
        defer { worker.close() }
        let claim = try await queue.claim(worker)
        try await worker.complete(claim, result: sampleResult)

        var events: [StatusEvent] = []
        for try await event in queue.client.watch(job.id) { events.append(event) }
        #expect(events.map(\.status) == [.completed])
        #expect(events.first?.result == sampleResult)
    }

    @Test func aWatcherSeesEveryStageInOrderThroughCompletion() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        try await queue.client.setConcurrency(2, model: "flux")
        let ahead = try await queue.enqueue("ahead")
        let job = try await queue.enqueue("watched")
        let collected = Mutex<[StatusEvent]>([])
        let watching = Task {
            for try await event in queue.client.watch(job.id) { collected.withLock { $0.append(event) } }
        }
        // Wait for the watcher's first event (the current state) before moving the job on.
        while collected.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(5)) }

        let worker = queue.worker()
        defer { worker.close() }
        _ = try await queue.claim(worker)  // "ahead"
        let claim = try await queue.claim(worker)
        #expect(claim.id == job.id)
        try await worker.progress(claim, stage: .generating, detail: ["enhanced_prompt": .string("watched, cinematic")])
        try await worker.progress(claim, stage: .retrying, detail: ["error": .object(["code": .string("http_503"),
                                                                                     "message": .string("busy")]),
                                                               "retry": .object(["delay_ms": .int(250)])])
        try await worker.progress(claim, stage: .generating)
        try await worker.complete(claim, result: sampleResult)
        try await watching.value

        let events = collected.withLock { $0 }
        #expect(events.map(\.status) == [.queued, .enhancing, .generating, .retrying, .generating, .completed])
        #expect(events.first?.position == 2)
        #expect(events.map(\.revision) == Array(1...6))
        #expect(events[2].enhancedPrompt == "watched, cinematic")
        #expect(events[3].error?.code == "http_503" && events[3].fields["retry"]?.objectValue?["delay_ms"]?.intValue == 250)
        #expect(events.last?.result == sampleResult)
        _ = ahead
    }

    @Test func enqueueAndWatchMissesNoStageHoweverFastTheWorker() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let (job, events) = try await queue.client.enqueueAndWatch(JobRequest(model: "flux", prompt: "fast", user: "alice"))
        // The job runs to its end before anyone reads the stream.
        let worker = queue.worker()
        defer { worker.close() }
        let claim = try await queue.claim(worker)
        #expect(claim.id == job.id)
        try await worker.progress(claim, stage: .generating)
        try await worker.complete(claim, result: sampleResult)
        var statuses: [JobStatus] = []
        for try await event in events { statuses.append(event.status) }
        #expect(statuses == [.queued, .enhancing, .generating, .completed])

        // A repeated idempotency key follows the existing job from its current state.
        let first = try await queue.enqueue("again", key: "k1")
        let (repeated, stream) = try await queue.client.enqueueAndWatch(
            JobRequest(model: "flux", prompt: "again", user: "alice", idempotencyKey: "k1"))
        #expect(repeated.id == first.id && !repeated.created)
        try await queue.client.cancel(first.id)
        var last: JobStatus?
        for try await event in stream { last = event.status }
        #expect(last == .cancelled)
    }

    @Test func watchEndsAtCancellationAndFailsForAnUnknownJob() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let job = try await queue.enqueue("to cancel")
        try await queue.client.cancel(job.id)
        var statuses: [JobStatus] = []
        for try await event in queue.client.watch(job.id) { statuses.append(event.status) }
        #expect(statuses == [.cancelled])

        let error = await #expect(throws: ImageQueueError.self) {
            for try await _ in queue.client.watch("flux-unknownjob") {}
        }
        #expect(error?.code == .notFound)
    }

    @Test func aMalformedOrForeignEventOnTheChannelIsSkippedNotFatal() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let job = try await queue.enqueue("watched through noise")
        let id = try JobID(job.id)
        let watcher = Task {
            var statuses: [JobStatus] = []
            for try await event in queue.client.watch(job.id) { statuses.append(event.status) }
            return statuses
        }
        // The noise must reach the watcher: wait for its subscription (not for a fixed time,
        // which a loaded machine outlasts).
        let channel = queue.keys.events(id)
        for _ in 0..<500 {
            let reply = try await queue.redis.send("PUBSUB", "NUMSUB", channel)
            if (reply.array?.last?.int ?? 0) >= 1 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        for garbage in ["{not json", "[1,2]", #"{"v":9,"id":"x","model":"flux","status":"completed"}"#,
                        #"{"v":1,"id":"x","model":"flux","status":"exploded"}"#] {
            try await queue.redis.send("PUBLISH", queue.keys.events(id), garbage)
        }
        try await queue.client.cancel(job.id)
        // The stored state may be read before or after the cancel; either way the stream goes
        // on past the noise to the real end.
        let statuses = try await watcher.value
        #expect(statuses.last == .cancelled && statuses.allSatisfy { [.queued, .cancelled].contains($0) },
                "noise neither ends nor breaks the stream: \(statuses)")
    }

    @Test func theModelChannelCarriesEveryJobsEvents() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let subscriber = runInTest(RedisSubscriber(configuration: queue.redisConfiguration))
        defer { subscriber.close() }
        let stream = try await subscriber.subscribe([queue.keys.events("sdxl")])
        let job = try await queue.enqueue("on the model channel", model: "sdxl")
        var iterator = stream.makeAsyncIterator()
        guard case .message(_, let payload) = await iterator.next() else { Issue.record("no event"); return }
        let event = try StatusEvent(json: payload)
        #expect(event.id == job.id && event.status == .queued && event.model == "sdxl" && event.position == 1)
        #expect(event.fields["v"] == .int(1))
    }
}
