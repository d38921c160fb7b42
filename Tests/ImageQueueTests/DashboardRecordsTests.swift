@testable import ImageQueue
import RedisClient
import Testing
import TestSupport

/// The three records the scripts keep for the operator's dashboard (lua/includes/common.lua,
/// the end; docs/PROTOCOL.md §19): a job's bounded `history`, the per-minute counters and
/// each model's list of latest completions.
@Suite(.runsClients) struct DashboardRecordsTests {
    func statuses(_ info: JobInfo) -> [String] { info.history.map(\.status.rawValue) }

    @Test func theHistoryHasEveryStatusChangeButNoEntryAtEnqueueAndNoneForProgress() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let worker = queue.worker()
        let job = try await queue.enqueue("a lighthouse")
        #expect(try await queue.hash(job.id)["history"] == nil, "enqueue writes no history (queued jobs stay small)")
        let queued = try await queue.client.inspector.status(job.id)
        #expect(queued.history == [JobHistoryEntry(status: .queued, time: queued.enqueuedAt ?? -1)], "\(queued.history)")

        let first = try await queue.claim(worker)
        try await worker.progress(first, stage: .generating, detail: ["enhanced_prompt": .string("a lighthouse, dawn")])
        try await worker.progress(first, stage: .generating, detail: ["progress": .double(0.3)])
        try await worker.progress(first, stage: .generating, detail: ["progress": .double(0.6)])
        #expect(try await worker.fail(first, error: JobError(code: "backend_down", message: "503"), retryable: true) == .requeued)
        let second = try await queue.claim(worker)
        try await worker.progress(second, stage: .retrying, detail: [:])
        try await worker.progress(second, stage: .generating, detail: ["progress": .double(0.5)])
        try await worker.complete(second, result: sampleResult)

        let info = try await queue.client.inspector.status(job.id)
        #expect(statuses(info) == ["queued", "enhancing", "generating", "queued", "enhancing", "retrying", "generating", "completed"],
                "\(info.history)")
        #expect(info.history.map(\.attempt) == [nil, 1, nil, nil, 2, nil, nil, nil], "a claim's entry carries its attempt")
        #expect(info.history.first?.time == info.enqueuedAt)
        #expect(info.history.last?.time == info.finishedAt)
        #expect(zip(info.history, info.history.dropFirst()).allSatisfy { $0.time <= $1.time }, "oldest first: \(info.history)")
        // The stored text: `status@ms` entries, a claim's with `#attempt`.
        let field = try #require(try await queue.hash(job.id)["history"])
        #expect(field.split(separator: ";").count == 7, "\(field)")
        #expect(field.hasPrefix("enhancing@") && field.split(separator: ";")[0].hasSuffix("#1"), "\(field)")
    }

    @Test func cancelledDeadRetriedRecoveredAndReleasedJobsEachGetTheirEntries() async throws {
        let queue = try QueueFixture(maxAttempts: 1)
        defer { queue.close() }
        try await queue.client.setConcurrency(5, model: "flux")
        let worker = queue.worker()

        let waiting = try await queue.enqueue("cancelled while queued", enhance: false)
        try await queue.client.cancel(waiting.id)
        #expect(statuses(try await queue.client.inspector.status(waiting.id)) == ["queued", "cancelled"])

        let doomed = try await queue.enqueue("fails, is retried, then cancelled while running", enhance: false)
        var job = try await queue.claim(worker)
        #expect(try await worker.fail(job, error: JobError(code: "nsfw", message: "refused"), retryable: false) == .dead)
        #expect(try await queue.client.retryDead(model: "flux", id: doomed.id) == 1)
        job = try await queue.claim(worker)
        #expect(try await worker.release(job) == 1)
        job = try await queue.claim(worker)
        try await queue.client.cancel(doomed.id)
        let doomedInfo = try await queue.client.inspector.status(doomed.id)
        #expect(statuses(doomedInfo) == ["queued", "generating", "failed", "queued", "generating", "queued", "generating", "cancelled"],
                "\(doomedInfo.history)")

        let lost = try await queue.enqueue("its worker dies", enhance: false)
        _ = try await queue.claim(worker)
        try await queue.expireLease(of: lost.id)
        #expect(try await worker.recoverExpired(model: "flux") == (requeued: 0, dead: 1))
        #expect(statuses(try await queue.client.inspector.status(lost.id)) == ["queued", "generating", "failed"])
    }

    @Test func theHistoryIsBoundedAndDropsItsOldestEntries() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let worker = queue.worker()
        let job = try await queue.enqueue("claimed and handed back again and again", enhance: false)
        for _ in 0..<40 {
            try await worker.release(try await queue.claim(worker))   // two entries: generating#1, queued
        }
        let field = try #require(try await queue.hash(job.id)["history"])
        let entries = field.split(separator: ";")
        #expect(field.utf8.count <= 830, "\(field.utf8.count) bytes")
        #expect((28...36).contains(entries.count), "about 32 entries: \(entries.count)")
        #expect(entries.last?.hasPrefix("queued@") == true)
        let info = try await queue.client.inspector.status(job.id)
        #expect(info.history.count == entries.count + 1, "queued at enqueue, then the kept entries")
        #expect(info.history.first?.status == .queued && info.history.first?.time == info.enqueuedAt)
    }

    @Test func eachEndedJobCountsOnceInItsMinuteWithItsWaitAndRunBuckets() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        try await queue.client.setConcurrency(5, model: "flux")
        let worker = queue.worker()
        var done: [String] = []
        for n in 0..<3 { done.append(try await queue.enqueue("done \(n)", enhance: false).id) }
        let bad = try await queue.enqueue("fails", enhance: false)
        guard case .claimed(let jobs) = try await worker.claim(model: "flux", lease: .seconds(30), upTo: 4) else {
            Issue.record("nothing claimed"); return
        }
        #expect(jobs.count == 4)
        // One job with known times: waited 2 s, has run for 5 s.
        let now = try await queue.client.inspector.serverTime()
        try await queue.redis.send("HSET", queue.keys.job(try JobID(done[0])), "enqueued_at", String(now - 7000), "started_at", String(now - 5000))
        for job in jobs where job.id != bad.id { try await worker.complete(job, result: sampleResult) }
        try await worker.fail(jobs.first { $0.id == bad.id }!, error: JobError(code: "nsfw", message: "refused"), retryable: false)

        let finished = try await queue.client.inspector.status(done[0]).finishedAt ?? 0
        let key = queue.keys.statsMinute("flux", minute: finished / 60_000)
        let fields = QueueInspector.hash(try await queue.redis.send("HGETALL", key))
        #expect(StatsBuckets.bucket(milliseconds: 2000) == 43 && StatsBuckets.bucket(milliseconds: 5000) == 49,
                "four buckets per doubling")
        // Its run time is 5 s plus however long the completion took to come (seconds on a loaded machine).
        let runMilliseconds = finished - (now - 5000)
        #expect(runMilliseconds >= 5000, "\(runMilliseconds)")
        let wait = StatsBuckets.bucket(milliseconds: 2000), run = StatsBuckets.bucket(milliseconds: runMilliseconds)
        #expect(fields["c|w\(wait)|r\(run)"] != nil, "the job with known times (run \(runMilliseconds) ms): \(fields)")
        #expect(fields.keys.allSatisfy { $0.wholeMatch(of: #/[cf]\|w\d+\|r\d+/#) != nil }, "\(fields)")
        // Jobs finishing in the next minute would be in the next key: count across both.
        let next = QueueInspector.hash(try await queue.redis.send("HGETALL", queue.keys.statsMinute("flux", minute: finished / 60_000 + 1)))
        func count(_ outcome: String) -> Int {
            (Array(fields) + Array(next)).filter { $0.key.hasPrefix(outcome + "|") }.reduce(0) { $0 + (Int($1.value) ?? 0) }
        }
        #expect(count("c") == 3 && count("f") == 1, "\(fields) \(next)")
        let ttl = try await queue.redis.send("TTL", key).int ?? 0
        #expect((7000...7200).contains(ttl), "kept about 2 hours: \(ttl)")

        let report = try await queue.client.inspector.minuteStats(minutes: 5)
        #expect(report.minutes == 5 && report.models.keys.sorted() == ["flux", "sdxl"])
        let flux = try #require(report.models["flux"])
        #expect(flux.series.count == 5 && flux.completed == 3 && flux.failed == 1, "\(flux)")
        #expect(flux.series.map(\.minute) == (0..<5).map { report.from + Int64($0) * 60_000 })
        #expect(flux.series.last!.minute <= report.generatedAt && report.generatedAt < flux.series.last!.minute + 60_000)
        let p95 = try #require(flux.runMilliseconds?.p95)
        #expect(p95 == StatsBuckets.representative(run), "the slowest of three runs is the 5 s one: \(p95)")
        #expect(Double(p95) > Double(runMilliseconds) / 1.2 && Double(p95) < Double(runMilliseconds) * 1.2,
                "a bucket spans a quarter of a doubling: \(p95) for \(runMilliseconds) ms")
        #expect(flux.waitMilliseconds != nil && report.models["sdxl"]?.completed == 0 && report.models["sdxl"]?.runMilliseconds == nil)
        await #expect(throws: ImageQueueError.self) { try await queue.client.inspector.minuteStats(minutes: 121) }
    }

    @Test func aMalformedPendingEntryCountsAsFailedWithoutTimes() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        try await queue.redis.send("ZADD", queue.keys.pending("flux"), "0", "flux-broken")
        #expect(try await queue.worker().claim(model: "flux", lease: .seconds(30)) == .empty)
        let report = try await queue.client.inspector.minuteStats(minutes: 2)
        #expect(report.models["flux"]?.failed == 1 && report.models["flux"]?.completed == 0, "\(report)")
    }

    @Test func completeAndClaimKeepsTheRecordsOfBothHalves() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let worker = queue.worker()
        let done = try await queue.enqueue("first", enhance: false)
        let next = try await queue.enqueue("second", enhance: false)
        let first = try await queue.claim(worker)
        #expect(first.id == done.id)
        let answer = await worker.complete([(first, sampleResult)], thenClaimUpTo: 1, lease: .seconds(60))
        guard case .success(let outcomes) = answer.completions, case .claimed(let claimed)? = answer.claimed else {
            Issue.record("completeAndClaim answered \(answer.completions), \(String(describing: answer.claimed))"); return
        }
        #expect(outcomes.count == 1 && claimed.map(\.id) == [next.id])
        #expect(statuses(try await queue.client.inspector.status(done.id)) == ["queued", "generating", "completed"])
        #expect(statuses(try await queue.client.inspector.status(next.id)) == ["queued", "generating"])
        #expect(try await queue.redis.send("LINDEX", queue.keys.recent("flux"), "0").string == done.id)
        let minutes = try await queue.client.inspector.minuteStats(minutes: 2)
        #expect(minutes.models["flux"]?.completed == 1, "the completion is counted once: \(minutes)")
    }

    @Test func theRecentListHoldsTheLatestCompletionsAndIsTrimmedOnlyPastTwiceItsSize() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        try await queue.client.setConcurrency(200, model: "flux")
        let worker = queue.worker()
        var ids: [String] = []
        for n in 0..<101 { ids.append(try await queue.enqueue("job \(n)", enhance: false).id) }
        guard case .claimed(let jobs) = try await worker.claim(model: "flux", lease: .seconds(60), upTo: 101) else {
            Issue.record("nothing claimed"); return
        }
        #expect(jobs.count == 101)
        let recent = queue.keys.recent("flux")
        _ = try await worker.complete(Array(jobs.prefix(100)).map { ($0, sampleResult) })
        #expect(try await queue.redis.send("LLEN", recent).int == 100, "not trimmed at 100")
        try await worker.complete(jobs[100], result: sampleResult)
        #expect(try await queue.redis.send("LLEN", recent).int == 50, "trimmed to 50 past 100")
        #expect(try await queue.redis.send("LINDEX", recent, "0").string == jobs[100].id, "newest first")

        // The inspector reads it (every server the same list), skipping an expired job.
        try await queue.redis.send("DEL", queue.keys.job(try JobID(jobs[100].id)))
        let latest = try await queue.client.inspector.recentCompletions(limit: 24)
        #expect(latest.count == 24 && latest.allSatisfy { $0.status == .completed })
        #expect(!latest.contains { $0.id == jobs[100].id })
        #expect(Set(latest.map(\.id)).isSubset(of: Set(jobs.prefix(100).suffix(50).map(\.id))))
        #expect(zip(latest, latest.dropFirst()).allSatisfy { ($0.finishedAt ?? 0) >= ($1.finishedAt ?? 0) })
    }

    @Test func aCallerWithoutKeys9And10RecordsNothing() async throws {
        // As a protocol 1.1 client in another language calls completeJob: eight keys.
        let redis = runInTest(RedisConnection(configuration: try RedisConfiguration(url: TestEnvironment.redisURL())))
        defer { redis.close() }
        let keys = QueueKeys(prefix: TestEnvironment.uniquePrefix("nostats"))
        func call(_ name: String, _ arguments: [String]) async throws -> RESPValue {
            let script = RedisScript(name: name, source: ImageQueueScripts.sources[name]!)
            return try await redis.pipeline([.script(script, keys: keys.scriptKeys("flux"), arguments: ["flux", keys.events("flux")] + arguments)])[0]
        }
        _ = try await call("enqueueJob", ["flux-1", #"{"prompt":"p","user":"u"}"#, "3", "0"])
        let claim = try await call("claimJob", ["w", "30000"])
        let token = try #require(claim.array?[2].int)
        #expect(try await call("completeJob", ["flux-1", String(token), #"{"bytes":1}"#, "0"]).int == 1)
        let all = try await redis.send("KEYS", "\(keys.prefix):*").array?.compactMap(\.string) ?? []
        #expect(!all.contains { $0.contains(":stats:") || $0.hasSuffix(":recent") }, "\(all)")
        #expect(try await redis.send("HGET", keys.job(try JobID("flux-1")), "history").string?.contains(";completed@") == true,
                "the history needs no extra key")
    }
}
