import ImageQueue
import RedisClient
import Testing
import TestSupport

@Suite(.runsClients) struct ClaimTests {
    @Test func eachModelIsFirstInFirstOut() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        var expected: [String: [String]] = ["flux": [], "sdxl": []]
        for index in 0..<30 {
            let model = index % 3 == 0 ? "sdxl" : "flux"
            expected[model]!.append(try await queue.enqueue("prompt \(index)", model: model).id)
        }
        let worker = queue.worker()
        defer { worker.close() }
        for model in ["flux", "sdxl"] {
            var order: [String] = []
            while case .claimed(let job) = try await worker.claim(model: model, lease: .seconds(30)) {
                order.append(job.id)
                try await worker.complete(job, result: sampleResult)
            }
            #expect(order == expected[model])
        }
    }

    @Test func theClaimCarriesTheRequestAndSetsTheFirstStage() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let enhanced = try await queue.enqueue("with enhancement")
        let plain = try await queue.enqueue("without", enhance: false)
        try await queue.client.setConcurrency(2, model: "flux")
        let worker = queue.worker("host-a:1")
        defer { worker.close() }
        let first = try await queue.claim(worker)
        let second = try await queue.claim(worker)
        #expect(first.id == enhanced.id && first.payload.prompt == "with enhancement" && first.payload.enhance)
        #expect(first.attempt == 1 && first.maxAttempts == 3 && first.enqueuedAt > 0)
        #expect(second.id == plain.id && !second.payload.enhance)
        #expect(Int(second.token)! > Int(first.token)!)
        let info = try await queue.client.inspector.status(first.id)
        #expect(info.status == .enhancing && info.worker == "host-a:1" && info.startedAt != nil)
        #expect(try await queue.client.inspector.status(second.id).status == .generating)
    }

    @Test func aClaimWhoseAnswerIsLostStillReturnsTheJobItTook() async throws {
        let server = try await RedisServer.launch(extraArguments: ["--enable-debug-command", "yes"])
        let queue = try QueueFixture(url: server.url)
        defer { queue.close() }
        let first = try await queue.enqueue("first")
        try await queue.enqueue("second")
        var impatient = queue.redisConfiguration
        impatient.commandTimeout = .milliseconds(300)
        let worker = runInTest(WorkerQueue(redis: impatient, configuration: queue.configuration, workerID: "w1"))
        defer { worker.close() }
        #expect(try await worker.claim(model: "sdxl", lease: .seconds(30)) == .empty)  // connected, script loaded

        // Redis stalls longer than the worker waits for an answer: the claim is taken, but its
        // answer is lost to a timeout. Without asking again, the job would stay held by nobody
        // until its lease expired, and the model would answer "full".
        try await queue.redis.send("PING")
        let stall = Task { try await queue.redis.send(RedisCommand("DEBUG", "SLEEP", "1.5"), timeout: .seconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        let outcome = try await worker.claim(model: "flux", lease: .seconds(30))
        _ = try await stall.value

        guard case .claimed(let job) = outcome else {
            Issue.record("expected the first job, got \(outcome)")
            return
        }
        #expect(job.id == first.id && job.attempt == 1 && job.payload.prompt == "first")
        // Taken once: one fencing token, held by the job, and the model is full with it.
        #expect(try await queue.hash(first.id)["token"] == job.token)
        #expect(try await queue.redis.send("GET", queue.keys.fence("flux")) == .bulk(Array("1".utf8)))
        #expect(try await worker.claim(model: "flux", lease: .seconds(30)) == .full)
        try await worker.complete(job, result: sampleResult)
        withExtendedLifetime(server) {}
    }

    @Test func aClaimWhoseAnswerIsLostIsAskedAgainWhileRedisIsLoading() async throws {
        let server = try await RedisServer.launch(extraArguments: ["--enable-debug-command", "yes"])
        let queue = try QueueFixture(url: server.url)
        defer { queue.close() }
        let first = try await queue.enqueue("first")
        // Enough data that reloading it takes a while, with LOADING answers meanwhile.
        try await queue.redis.send(RedisCommand("DEBUG", "POPULATE", "300000", "filler"), timeout: .seconds(60))
        var impatient = queue.redisConfiguration
        impatient.commandTimeout = .milliseconds(300)
        let worker = runInTest(WorkerQueue(redis: impatient, configuration: queue.configuration, workerID: "w1"))
        defer { worker.close() }
        #expect(try await worker.claim(model: "sdxl", lease: .seconds(30)) == .empty)  // connected, script loaded

        // Redis stalls past the worker's patience (the claim's answer is lost), then reloads
        // its data, as after a restart: the repeat of the claim is answered LOADING at first.
        let stall = Task {
            try await queue.redis.pipeline([RedisCommand("DEBUG", "SLEEP", "0.6"), RedisCommand("DEBUG", "RELOAD")],
                                           timeout: .seconds(60))
        }
        try await Task.sleep(for: .milliseconds(150))
        let outcome = try await worker.claim(model: "flux", lease: .seconds(30))
        #expect(try await stall.value.last == .status("OK"))

        guard case .claimed(let job) = outcome else {
            Issue.record("expected the first job, got \(outcome)")
            return
        }
        #expect(job.id == first.id && job.attempt == 1)
        #expect(try await queue.hash(first.id)["token"] == job.token)
        #expect(try await worker.claim(model: "flux", lease: .seconds(30)) == .full)
        withExtendedLifetime(server) {}
    }

    @Test func theConcurrencyLimitHoldsAcrossIndependentClaimers() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        try await queue.client.setConcurrency(2, model: "flux")
        for index in 0..<8 { try await queue.enqueue("job \(index)") }
        let hostA = queue.worker("host-a")
        let hostB = queue.worker("host-b")
        defer { hostA.close(); hostB.close() }

        // 40 claims race from two workers with separate connections: exactly two win.
        let claimed = try await withThrowingTaskGroup(of: ClaimedJob?.self) { group in
            for index in 0..<40 {
                let worker = index % 2 == 0 ? hostA : hostB
                group.addTask {
                    if case .claimed(let job) = try await worker.claim(model: "flux", lease: .seconds(30)) { return job }
                    return nil
                }
            }
            return try await group.reduce(into: [ClaimedJob]()) { if let job = $1 { $0.append(job) } }
        }
        #expect(claimed.count == 2)
        #expect(try await hostA.claim(model: "flux", lease: .seconds(30)) == .full)
        #expect(try await queue.client.inspector.stats()["flux"]?.active == 2)

        // Finishing one frees exactly one slot.
        try await hostA.complete(claimed[0], result: sampleResult)
        let next = try await hostB.claim(model: "flux", lease: .seconds(30))
        guard case .claimed = next else { Issue.record("expected a claim after a slot was freed"); return }
        #expect(try await hostA.claim(model: "flux", lease: .seconds(30)) == .full)
        // Other models are not limited by flux's slots.
        try await queue.enqueue("sdxl job", model: "sdxl")
        guard case .claimed = try await hostA.claim(model: "sdxl", lease: .seconds(30)) else {
            Issue.record("sdxl should be claimable while flux is full"); return
        }
    }

    @Test func anExpiredLeaseGoesBackToTheHeadBeforeLaterJobs() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let a = try await queue.enqueue("A")
        let b = try await queue.enqueue("B")
        let c = try await queue.enqueue("C")
        let crashed = queue.worker("crashed")
        let survivor = queue.worker("survivor")
        defer { crashed.close(); survivor.close() }
        let lost = try await queue.claim(crashed, lease: .seconds(60))
        #expect(lost.id == a.id)

        #expect(try await survivor.recoverExpired(model: "flux") == (0, 0))  // not expired yet
        try await queue.expireLease(of: lost.id)
        let recovered = try await survivor.recoverExpired(model: "flux")
        #expect(recovered == (1, 0))
        let info = try await queue.client.inspector.status(a.id)
        #expect(info.status == .queued && info.position == 1 && info.error?.code == "lease_expired")
        #expect(info.worker == nil)
        #expect(try await queue.client.inspector.position(b.id) == 2)

        let rerun = try await queue.claim(survivor)
        #expect(rerun.id == a.id && rerun.attempt == 2)
        try await survivor.complete(rerun, result: sampleResult)
        #expect(try await queue.claim(survivor).id == b.id)
        _ = c
    }

    @Test func recoveryRunFromManyWorkersAtOnceRecoversEachJobOnce() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        try await queue.client.setConcurrency(5, model: "flux")
        let crashed = queue.worker("crashed")
        defer { crashed.close() }
        for index in 0..<5 {
            try await queue.enqueue("job \(index)")
            try await queue.expireLease(of: try await queue.claim(crashed, lease: .seconds(60)).id)
        }
        let sweepers = (0..<6).map { queue.worker("sweeper-\($0)") }
        defer { sweepers.forEach { $0.close() } }
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for sweeper in sweepers { group.addTask { try await sweeper.recoverExpired(model: "flux").requeued } }
            return try await group.reduce(0, +)
        }
        #expect(total == 5)
        let stats = try #require(try await queue.client.inspector.stats()["flux"])
        #expect(stats.pending == 5 && stats.active == 0)
    }

    @Test func theLastAttemptToExpireIsDeadLettered() async throws {
        let queue = try QueueFixture(maxAttempts: 2)
        defer { queue.close() }
        let job = try await queue.enqueue("keeps crashing its worker")
        let worker = queue.worker()
        defer { worker.close() }
        for expectedAttempt in 1...2 {
            let claim = try await queue.claim(worker, lease: .seconds(60))
            #expect(claim.attempt == expectedAttempt)
            try await queue.expireLease(of: claim.id)
            _ = try await worker.recoverExpired(model: "flux")
        }
        let info = try await queue.client.inspector.status(job.id)
        #expect(info.status == .failed && info.error?.code == "lease_expired")
        #expect(try await queue.client.inspector.deadJobs(model: "flux").map(\.id) == [job.id])
    }

    @Test func aStaleTokenIsRejectedByEveryOwnerScriptAndChangesNothing() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let job = try await queue.enqueue("contested")
        let old = queue.worker("old-owner")
        let new = queue.worker("new-owner")
        defer { old.close(); new.close() }
        let stale = try await queue.claim(old, lease: .seconds(60))
        try await queue.expireLease(of: stale.id)
        _ = try await new.recoverExpired(model: "flux")
        let current = try await queue.claim(new)
        #expect(current.id == job.id && current.token != stale.token)
        let before = try await queue.hash(job.id)

        let attempts: [(String, () async throws -> Void)] = [
            ("heartbeat", { try await old.heartbeat(stale, lease: .seconds(30)) }),
            ("progress", { try await old.progress(stale, stage: .generating) }),
            ("complete", { try await old.complete(stale, result: sampleResult) }),
            ("fail", { try await old.fail(stale, error: JobError(code: "x", message: "y"), retryable: false) }),
            ("release", { try await old.release(stale) }),
        ]
        for (name, attempt) in attempts {
            let error = await #expect(throws: ImageQueueError.self, "\(name) with a stale token") { try await attempt() }
            #expect(error?.code == .staleToken, "\(name)")
        }
        #expect(try await queue.hash(job.id) == before)
        // The owner's calls still work. A repeat of its completion (a lost reply, an
        // unconfirmed replication) answers success and changes nothing; the old owner's is
        // still refused, and the completed job takes no heartbeat.
        try await new.heartbeat(current, lease: .seconds(30))
        try await new.complete(current, result: sampleResult)
        let completed = try await queue.hash(job.id)
        try await new.complete(current, result: sampleResult)
        #expect(try await queue.hash(job.id) == completed)
        let late = await #expect(throws: ImageQueueError.self) { try await old.complete(stale, result: sampleResult) }
        #expect(late?.code == .staleToken)
        let beat = await #expect(throws: ImageQueueError.self) { try await new.heartbeat(current, lease: .seconds(30)) }
        #expect(beat?.code == .staleToken)
        #expect(try await queue.client.inspector.stats()["flux"]?.completedTotal == 1)
    }

    @Test func aHeartbeatExtendsTheLeasePastItsFirstDeadline() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        try await queue.enqueue("long job")
        let worker = queue.worker()
        defer { worker.close() }
        let job = try await queue.claim(worker, lease: .milliseconds(1))
        let active = queue.keys.active("flux")
        let firstDeadline = try #require(try await queue.redis.send("ZSCORE", active, job.id).int)
        try await worker.heartbeat(job, lease: .seconds(60))
        let extended = try #require(try await queue.redis.send("ZSCORE", active, job.id).int)
        #expect(extended >= firstDeadline + 59_000)
        // Past the first deadline (1 ms), the sweep leaves the job with its owner.
        try await Task.sleep(for: .milliseconds(20))
        #expect(try await worker.recoverExpired(model: "flux") == (0, 0))
        try await worker.complete(job, result: sampleResult)
        #expect(try await queue.client.inspector.status(job.id).status == .completed)
    }

    @Test func progressStoresTheEnhancedPromptAndCompletionTheResult() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let enqueued = try await queue.enqueue("a cat")
        let worker = queue.worker()
        defer { worker.close() }
        let job = try await queue.claim(worker)
        try await worker.progress(job, stage: .generating, detail: ["enhanced_prompt": .string("a fluffy cat, golden hour")])
        #expect(try await queue.client.inspector.status(job.id).enhancedPrompt == "a fluffy cat, golden hour")
        try await worker.complete(job, result: sampleResult)
        let info = try await queue.client.inspector.status(enqueued.id)
        #expect(info.status == .completed && info.result == sampleResult && info.finishedAt != nil)
        #expect(info.lastEvent?.result == sampleResult && info.lastEvent?.enhancedPrompt == "a fluffy cat, golden hour")
        #expect(try await queue.redis.send("PTTL", queue.keys.job(try JobID(job.id))).int ?? -1 > 0)
    }

    @Test func aRetryableFailureRequeuesAtTheHeadUntilAttemptsRunOut() async throws {
        let queue = try QueueFixture(maxAttempts: 2)
        defer { queue.close() }
        let flaky = try await queue.enqueue("flaky")
        let later = try await queue.enqueue("later")
        let worker = queue.worker()
        defer { worker.close() }
        let first = try await queue.claim(worker)
        let transient = JobError(code: "backend_unavailable", message: "the image service is down")
        #expect(try await worker.fail(first, error: transient, retryable: true) == .requeued)
        #expect(try await queue.client.inspector.position(flaky.id) == 1)
        #expect(try await queue.client.inspector.position(later.id) == 2)
        let second = try await queue.claim(worker)
        #expect(second.id == flaky.id && second.attempt == 2)
        #expect(try await worker.fail(second, error: transient, retryable: true) == .dead)
        let info = try await queue.client.inspector.status(flaky.id)
        #expect(info.status == .failed && info.error == transient)
        #expect(try await queue.client.inspector.stats()["flux"]?.failedTotal == 1)
    }

    @Test func aPermanentFailureGoesStraightToTheDeadList() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let job = try await queue.enqueue("rejected")
        let worker = queue.worker()
        defer { worker.close() }
        let claim = try await queue.claim(worker)
        #expect(try await worker.fail(claim, error: JobError(code: "backend_rejected", message: "401"), retryable: false) == .dead)
        let dead = try await queue.client.inspector.deadJobs(model: "flux")
        #expect(dead.map(\.id) == [job.id] && dead[0].error?.code == "backend_rejected")
    }

    @Test func releaseHandsTheJobBackWithoutCountingTheAttempt() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let first = try await queue.enqueue("first")
        try await queue.enqueue("second")
        let worker = queue.worker()
        defer { worker.close() }
        let claim = try await queue.claim(worker)
        #expect(try await worker.release(claim) == 1)
        let info = try await queue.client.inspector.status(first.id)
        #expect(info.status == .queued && info.attempt == 0 && info.position == 1)
        let again = try await queue.claim(worker)
        #expect(again.id == first.id && again.attempt == 1)
    }

    @Test func deadJobsCanBeRetriedAtTheTailOrPurged() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        try await queue.client.setConcurrency(3, model: "flux")
        let worker = queue.worker()
        defer { worker.close() }
        var dead: [String] = []
        for index in 0..<3 {
            try await queue.enqueue("doomed \(index)")
            let claim = try await queue.claim(worker)
            try await worker.fail(claim, error: JobError(code: "bad", message: "no"), retryable: false)
            dead.append(claim.id)
        }
        let waiting = try await queue.enqueue("waiting")
        #expect(try await queue.client.retryDead(model: "flux", id: dead[1]) == 1)
        let retried = try await queue.client.inspector.status(dead[1])
        #expect(retried.status == .queued && retried.attempt == 0 && retried.error == nil && retried.position == 2)
        #expect(try await queue.client.inspector.position(waiting.id) == 1)

        #expect(try await queue.client.purgeDead(model: "flux", id: dead[0]) == 1)
        let gone = await #expect(throws: ImageQueueError.self) { try await queue.client.inspector.status(dead[0]) }
        #expect(gone?.code == .notFound)
        let notDead = await #expect(throws: ImageQueueError.self) { try await queue.client.retryDead(model: "flux", id: waiting.id) }
        #expect(notDead?.code == .notFound)
        #expect(try await queue.client.retryDead(model: "flux") == 1)
        #expect(try await queue.client.inspector.stats()["flux"]?.dead == 0)
        #expect(try await queue.client.purgeDead(model: "flux") == 0)
    }

    @Test func malformedEntriesInThePendingListAreDeadLetteredWithAReason() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let pending = queue.keys.pending("flux")
        // An id with no job hash, a job whose hash lacks its request, a job whose request
        // is not JSON, then a good job.
        try await queue.redis.send("ZADD", pending, "1", "flux-ghost")
        try await queue.redis.send("HSET", queue.keys.jobPrefix("flux") + "flux-norequest", "status", "queued")
        try await queue.redis.send("ZADD", pending, "2", "flux-norequest")
        try await queue.redis.send("HSET", queue.keys.jobPrefix("flux") + "flux-garbage", "status", "queued",
                                   "request", "{not json", "attempt", "0", "max_attempts", "3", "seq", "3")
        try await queue.redis.send("ZADD", pending, "3", "flux-garbage")
        try await queue.redis.send("INCRBY", queue.keys.sequence("flux"), "3")
        let good = try await queue.enqueue("a good job")

        let worker = queue.worker()
        defer { worker.close() }
        let claimed = try await queue.claim(worker)
        #expect(claimed.id == good.id)
        let dead = try await queue.client.inspector.deadJobs(model: "flux")
        #expect(Set(dead.map(\.id)) == ["flux-ghost", "flux-norequest", "flux-garbage"])
        #expect(dead.allSatisfy { $0.status == .failed && $0.error?.code == "malformed_job" })
        let reasons = dead.compactMap(\.error?.message).joined(separator: " | ")
        #expect(reasons.contains("missing") && reasons.contains("no request") && reasons.contains("not valid JSON"))
    }

    @Test func aJobOfANewerProtocolVersionIsDeadLetteredWithTheReasonNotRun() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let pending = queue.keys.pending("flux")
        try await queue.redis.send("HSET", queue.keys.jobPrefix("flux") + "flux-future", "status", "queued",
                                   "request", #"{"v":2,"prompt":"from the future","user":"u","steps":50}"#,
                                   "attempt", "0", "max_attempts", "3", "seq", "1")
        try await queue.redis.send("ZADD", pending, "1", "flux-future")
        try await queue.redis.send("INCRBY", queue.keys.sequence("flux"), "1")
        let good = try await queue.enqueue("a job of today")

        let worker = queue.worker()
        defer { worker.close() }
        let claimed = try await queue.claim(worker)
        #expect(claimed.id == good.id, "the v2 job is not run as if it were v1")
        let dead = try await queue.client.inspector.deadJobs(model: "flux")
        #expect(dead.map(\.id) == ["flux-future"])
        #expect(dead.first?.error == JobError(code: "unsupported_version", message: "the job's request is protocol v2; this worker reads v1"))
        #expect(dead.first?.prompt == "from the future", "the request is kept for a retry after the upgrade")
    }
}
