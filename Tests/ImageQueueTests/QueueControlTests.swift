import ImageQueue
import RedisClient
import Testing
import TestSupport

/// Priorities, pause/resume and the ETA, in the scripts themselves (claimJob, enqueueJob,
/// setPaused, the requeue paths, completeJob's run-time average), on a real Redis.
@Suite(.runsClients) struct QueueControlTests {
    func enqueue(_ queue: QueueFixture, _ prompt: String, _ priority: JobPriority) async throws -> EnqueuedJob {
        try await queue.client.enqueue(JobRequest(model: "flux", prompt: prompt, user: "alice", priority: priority))
    }

    /// A job's current event: stored once it was claimed; for a job never claimed (enqueueJob
    /// publishes its `queued` event without storing it) built from its fields and position.
    func storedEvent(_ queue: QueueFixture, _ id: String) async throws -> StatusEvent {
        try #require(try await queue.client.inspector.status(id).lastEvent)
    }

    @Test func jobsAreClaimedByLevelEachLevelInEnqueueOrderAndPositionsCountEveryJobAhead() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let levels: [JobPriority] = [.low, .normal, .high, .normal, .high]
        var ids: [String] = []
        for (index, level) in levels.enumerated() { ids.append(try await enqueue(queue, "job \(index)", level).id) }
        // Positions now, in enqueue order: low is last, the second high is behind the first.
        var positions: [Int?] = []
        for id in ids { positions.append(try await queue.client.inspector.status(id).position) }
        #expect(positions == [5, 3, 1, 4, 2])
        #expect(try await queue.client.inspector.status(ids[0]).priority == .low)
        #expect(try await queue.client.inspector.status(ids[1]).priority == .normal)
        // The enqueue's own answer and event say the position at that time.
        let late = try await enqueue(queue, "a late high", .high)
        #expect(late.position == 3)
        #expect(try await storedEvent(queue, late.id).position == 3)

        let worker = queue.worker()
        defer { worker.close() }
        var order: [String] = []
        while case .claimed(let job) = try await worker.claim(model: "flux", lease: .seconds(30)) {
            order.append(job.id)
            try await worker.complete(job, result: sampleResult)
        }
        #expect(order == [ids[2], ids[4], late.id, ids[1], ids[3], ids[0]])
    }

    @Test func aReleasedFailedOrRecoveredJobGoesBackToItsOwnPlaceInItsLevel() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let firstHigh = try await enqueue(queue, "first high", .high)
        let normal = try await enqueue(queue, "normal", .normal)
        let worker = queue.worker()
        defer { worker.close() }
        try await queue.client.setConcurrency(5, model: "flux")
        let claimedHigh = try await queue.claim(worker)
        let claimedNormal = try await queue.claim(worker)
        #expect(claimedHigh.id == firstHigh.id && claimedNormal.id == normal.id)
        let laterHigh = try await enqueue(queue, "later high", .high)
        let laterNormal = try await enqueue(queue, "later normal", .normal)
        let low = try await enqueue(queue, "low", .low)

        // Released: back ahead of the later high job, behind no one.
        let releasedAt = try await worker.release(claimedHigh)
        #expect(releasedAt == 1)
        // Failed with a retry: ahead of the later normal job, behind both high ones.
        #expect(try await worker.fail(claimedNormal, error: JobError(code: "backend_unavailable", message: "503"), retryable: true) == .requeued)
        var positions: [String: Int?] = [:]
        for id in [firstHigh.id, laterHigh.id, normal.id, laterNormal.id, low.id] {
            positions[id] = try await queue.client.inspector.status(id).position
        }
        #expect(positions == [firstHigh.id: 1, laterHigh.id: 2, normal.id: 3, laterNormal.id: 4, low.id: 5])

        // Recovered after its lease expired: the normal job again takes its own place.
        var order: [String] = []
        for _ in 0..<3 {
            let job = try await queue.claim(worker)
            order.append(job.id)
        }
        #expect(order == [firstHigh.id, laterHigh.id, normal.id])
        try await queue.expireLease(of: normal.id)
        #expect(try await worker.recoverExpired(model: "flux").requeued == 1)
        #expect(try await queue.client.inspector.status(normal.id).position == 1)
        #expect(try await queue.client.inspector.status(low.id).position == 3)
    }

    @Test func aRetriedDeadJobKeepsItsPriority() async throws {
        let queue = try QueueFixture(maxAttempts: 1)
        defer { queue.close() }
        let low = try await enqueue(queue, "will die", .low)
        let worker = queue.worker()
        defer { worker.close() }
        let job = try await queue.claim(worker)
        #expect(try await worker.fail(job, error: JobError(code: "backend_rejected", message: "no"), retryable: false) == .dead)
        let normal = try await enqueue(queue, "normal after", .normal)
        #expect(try await queue.client.retryDead(model: "flux", id: low.id) == 1)
        #expect(try await queue.client.inspector.status(low.id).position == 2)
        #expect(try await queue.client.inspector.status(normal.id).position == 1)
    }

    @Test func aPausedModelClaimsNothingAcceptsEnqueuesAndResumeRingsTheDoorbell() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let worker = queue.worker()
        defer { worker.close() }
        let running = try await queue.enqueue("already running")
        let runningJob = try await queue.claim(worker)
        #expect(runningJob.id == running.id)

        #expect(try await queue.client.pause(model: "flux"))
        #expect(try await queue.client.pause(model: "flux") == false)  // already paused
        let waiting = try await queue.enqueue("waits for the resume")
        #expect(waiting.status == .queued && waiting.position == 1)
        try await queue.client.setConcurrency(3, model: "flux")  // a free slot: still no claim
        #expect(try await worker.claim(model: "flux", lease: .seconds(30)) == .paused)
        #expect(try await queue.redis.send("LLEN", queue.keys.wake("flux")).int == 0, "no worker is woken for nothing")
        #expect(try await queue.client.inspector.stats()["flux"]?.paused == true)
        #expect(try await queue.client.inspector.stats()["sdxl"]?.paused == false)
        // A job that was running when the pause came finishes normally.
        try await worker.complete(runningJob, result: sampleResult)
        #expect(try await queue.client.inspector.status(running.id).status == .completed)
        #expect(try await queue.redis.send("LLEN", queue.keys.wake("flux")).int == 0, "a completion does not ring while paused")

        #expect(try await queue.client.resume(model: "flux"))
        #expect(try await queue.client.resume(model: "flux") == false)
        #expect(try await queue.redis.send("LLEN", queue.keys.wake("flux")).int == 1, "resume rings the doorbell")
        #expect(try await queue.client.inspector.stats()["flux"]?.paused == false)
        #expect(try await queue.claim(worker).id == waiting.id)
    }

    @Test func pauseAndResumeRefuseAnUnknownModel() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        await #expect(throws: ImageQueueError.self) { try await queue.client.pause(model: "dalle") }
        let error = await #expect(throws: ImageQueueError.self) { try await queue.client.resume(model: "dalle") }
        #expect(error?.code == .unknownModel && error?.message.contains("flux, sdxl") == true, "\(String(describing: error))")
    }

    @Test func completionsKeepAMovingAverageOfRunTimes() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let worker = queue.worker()
        defer { worker.close() }
        #expect(try await queue.client.inspector.stats()["flux"]?.averageRunMilliseconds == nil)
        try await queue.enqueue("first")
        let job = try await queue.claim(worker)
        // The run started 10 s ago (on the server's clock): the first sample is the average.
        let started = try #require(try await queue.hash(job.id)["started_at"].flatMap { Int64($0) })
        try await queue.redis.send("HSET", queue.keys.job(try JobID(job.id)), "started_at", String(started - 10_000))
        try await worker.complete(job, result: sampleResult)
        let first = try #require(try await queue.client.inspector.stats()["flux"]?.averageRunMilliseconds)
        #expect(first >= 10_000 && first < 20_000, "\(first)")
        // A second, near-instant job pulls the average a fifth of the way down.
        try await queue.enqueue("second")
        try await worker.complete(try await queue.claim(worker), result: sampleResult)
        let second = try #require(try await queue.client.inspector.stats()["flux"]?.averageRunMilliseconds)
        #expect(second >= first * 8 / 10 - 1 && second < first * 8 / 10 + 2_000, "\(first) -> \(second)")
    }

    @Test func theEventsETAAndTheStatusETAAreTheSameEstimate() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        // No history: no ETA anywhere.
        let first = try await queue.enqueue("no history yet")
        #expect(try await storedEvent(queue, first.id).etaMilliseconds == nil)
        #expect(try await queue.client.inspector.status(first.id).etaMilliseconds == nil)
        try await queue.redis.send("DEL", queue.keys.pending("flux"))

        let meta = queue.keys.meta("flux")
        // (concurrency, running, average): positions 1 to 6 each; running jobs are entries in
        // active that hold a lease (fake ids: nothing else reads them here).
        for (concurrency, running, average) in [(1, 1, 4000), (1, 0, 4000), (3, 3, 9000), (3, 1, 1234), (8, 8, 500)] {
            try await queue.redis.send("DEL", queue.keys.pending("flux"), queue.keys.active("flux"))
            try await queue.redis.send("HSET", meta, "concurrency", String(concurrency), "run_ms_avg", String(average))
            for slot in 0..<running {
                try await queue.redis.send("ZADD", queue.keys.active("flux"), "99999999999999", "flux-busy\(slot)")
            }
            for position in 1...6 {
                let job = try await queue.enqueue("eta \(concurrency) \(running) \(position)")
                #expect(job.position == position)
                let expected = QueueETA.estimate(position: position, concurrency: concurrency, running: running,
                                                 paused: false, averageRunMilliseconds: Int64(average))
                #expect(try await storedEvent(queue, job.id).etaMilliseconds == expected, "c=\(concurrency) r=\(running) p=\(position)")
                #expect(try await queue.client.inspector.status(job.id).etaMilliseconds == expected)
                #expect(expected != nil)
            }
        }
        // A full single slot, average 4 s: the next job waits about half a run, the third two and a half.
        #expect(QueueETA.estimate(position: 1, concurrency: 1, running: 1, paused: false, averageRunMilliseconds: 4000) == 2000)
        #expect(QueueETA.estimate(position: 3, concurrency: 1, running: 1, paused: false, averageRunMilliseconds: 4000) == 10_000)
        #expect(QueueETA.estimate(position: 2, concurrency: 3, running: 1, paused: false, averageRunMilliseconds: 9000) == 0)
        // Paused: no estimate (nobody knows when it resumes).
        try await queue.client.pause(model: "flux")
        let paused = try await queue.enqueue("paused")
        #expect(try await storedEvent(queue, paused.id).etaMilliseconds == nil)
        #expect(try await queue.client.inspector.status(paused.id).etaMilliseconds == nil)
        #expect(QueueETA.phrase(milliseconds: 40_200) == "about 40 s")
        #expect(QueueETA.phrase(milliseconds: 200) == nil, "it starts at once")
        #expect(QueueETA.phrase(milliseconds: 13_000) == "about 15 s")
        #expect(QueueETA.phrase(milliseconds: 150_000) == "about 3 min")
    }
}
