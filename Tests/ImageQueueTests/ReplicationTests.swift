import ImageQueue
import RedisClient
import Testing
import TestSupport

/// `WAIT` after every script that changes a job (`RedisConfiguration.waitReplicas`), against a
/// real master and replica: a change the replica confirmed succeeds; one it did not is
/// `not_replicated` (it ran on the master); a repeated enqueue with its idempotency key and a
/// repeated completion with its token are safe retries.
@Suite(.runsClients, .serialized) struct ReplicationTests {
    /// A master with one replica, the replica's link up.
    struct Pair {
        let master: RedisServer
        let replica: RedisServer

        static func start() async throws -> Pair {
            let master = try await RedisServer.launch()
            let replica = try await RedisServer.launch(extraArguments: ["--replicaof", "127.0.0.1", "\(master.port)"])
            let pair = Pair(master: master, replica: replica)
            #expect(try await pair.waitForLink(), "the replica never linked to its master")
            return pair
        }

        /// Until the master counts the replica and the replica's link is up.
        func waitForLink() async throws -> Bool {
            let probeMaster = runInTest(RedisConnection(configuration: try RedisConfiguration(url: master.url)))
            let probeReplica = runInTest(RedisConnection(configuration: try RedisConfiguration(url: replica.url)))
            return try await eventually {
                let onMaster = (try? await probeMaster.send("INFO", "replication").string) ?? ""
                let onReplica = (try? await probeReplica.send("INFO", "replication").string) ?? ""
                return onMaster.contains("connected_slaves:1") && onReplica.contains("master_link_status:up")
            }
        }

        /// A connection to the replica, for reading what reached it.
        func replicaConnection() throws -> RedisConnection {
            runInTest(RedisConnection(configuration: try RedisConfiguration(url: replica.url)))
        }
    }

    static func fixture(_ pair: Pair) throws -> QueueFixture {
        try QueueFixture(url: pair.master.url, rateLimit: nil, configureRedis: { redis in
            redis.waitReplicas = 1
            // Long enough for a replica's acknowledgement on a loaded machine (WAIT returns as
            // soon as it comes); the tests without a replica wait it out.
            redis.waitTimeout = .seconds(2)
        })
    }

    @Test func aConfirmedEnqueueIsOnTheReplicaWhenItReturns() async throws {
        let pair = try await Pair.start()
        let queue = try Self.fixture(pair)
        let job = try await queue.enqueue("replicated")
        // No wait here: WAIT returned only once the replica had the job.
        let onReplica = try await pair.replicaConnection().send("HGET", queue.keys.job(try JobID(job.id)), "status")
        #expect(onReplica.string == "queued")
    }

    @Test func anEnqueueNoReplicaConfirmedIsNotReplicatedAndARetryWithItsKeyQueuesItOnce() async throws {
        let pair = try await Pair.start()
        let queue = try Self.fixture(pair)
        await pair.replica.kill()
        let request = JobRequest(model: "flux", prompt: "unconfirmed", user: "alice", idempotencyKey: "order-17")
        let error = await #expect(throws: ImageQueueError.self) { try await queue.client.enqueue(request) }
        #expect(error?.code == .notReplicated, "\(String(describing: error))")
        #expect(error?.message.contains("0 of 1 replicas") == true, "\(String(describing: error))")
        #expect(error?.message.contains("ran on the Redis master") == true)
        // It ran on the master.
        #expect(try await queue.client.inspector.stats()["flux"]?.pending == 1)

        try await pair.replica.start()
        #expect(try await pair.waitForLink())
        let retried = try await queue.client.enqueue(request)
        #expect(try await queue.client.inspector.stats()["flux"]?.pending == 1, "the retry queued it once")
        let onReplica = try await pair.replicaConnection().send("HGET", queue.keys.job(try JobID(retried.id)), "status")
        #expect(onReplica.string == "queued")
    }

    @Test func aCompletionNoReplicaConfirmedIsRetriedSafelyWithItsToken() async throws {
        let pair = try await Pair.start()
        let queue = try Self.fixture(pair)
        let job = try await queue.enqueue("finish me")
        let worker = queue.worker()
        let claimed = try await queue.claim(worker)
        #expect(claimed.id == job.id)

        await pair.replica.kill()
        let error = await #expect(throws: ImageQueueError.self) { try await worker.complete(claimed, result: sampleResult) }
        #expect(error?.code == .notReplicated, "\(String(describing: error))")
        #expect(try await queue.hash(job.id)["status"] == "completed", "it ran on the master")

        try await pair.replica.start()
        #expect(try await pair.waitForLink())
        // The worker's retry: same token, answered as done, confirmed this time.
        try await worker.complete(claimed, result: sampleResult)
        #expect(try await queue.client.inspector.stats()["flux"]?.completedTotal == 1)
        let onReplica = try await pair.replicaConnection().send("HGET", queue.keys.job(try JobID(job.id)), "status")
        #expect(onReplica.string == "completed")
    }

    @Test func aClaimNoReplicaConfirmedStillHandsItsJobsToTheWorker() async throws {
        let pair = try await Pair.start()
        let queue = try Self.fixture(pair)
        let first = try await queue.enqueue("claimed while the replica is away")
        let second = try await queue.enqueue("claimed behind the doorbell")
        try await queue.client.setConcurrency(2, model: "flux")
        let worker = queue.worker()
        await pair.replica.kill()
        // The claim ran on the master: asked again under its id, then taken unconfirmed,
        // instead of held by nobody until the lease expires.
        let claimed = try await queue.claim(worker)
        #expect(claimed.id == first.id)
        let woken = try await worker.waitThenClaim(model: "flux", lease: .seconds(30), upTo: 1)
        guard case .claimed(let jobs) = woken else {
            Issue.record("nothing claimed behind the doorbell: \(woken)")
            return
        }
        #expect(jobs.map(\.id) == [second.id])
        #expect(try await queue.client.inspector.stats()["flux"]?.active == 2, "each job claimed once")
    }

    @Test func aRefusedWAITSaysWhy() async throws {
        let pair = try await Pair.start()
        let queue = try Self.fixture(pair)
        // A user whose ACL lacks +wait, as ops/redis-users.acl's worker had.
        _ = try await queue.redis.send("ACL", "SETUSER", "nowait", "on", ">nowait-pass", "~*", "&*", "+@all", "-wait")
        var configuration = try RedisConfiguration(url: "redis://nowait:nowait-pass@127.0.0.1:\(pair.master.port)")
        configuration.waitReplicas = 1
        let client = try runInTest(ImageQueueClient(redis: configuration, configuration: queue.configuration))
        let error = await #expect(throws: ImageQueueError.self) {
            try await client.enqueue(JobRequest(model: "flux", prompt: "no wait allowed", user: "alice"))
        }
        #expect(error?.code == .notReplicated)
        #expect(error?.message.contains("WAIT was refused (NOPERM") == true, "\(String(describing: error))")
        #expect(error?.message.contains("nowait-pass") == false)
    }

    @Test func withoutWaitReplicasNoWAITIsSent() async throws {
        let pair = try await Pair.start()
        let queue = try QueueFixture(url: pair.master.url)
        await pair.replica.kill()
        // Nothing asks for replicas: the enqueue succeeds with none.
        let job = try await queue.enqueue("fire and forget")
        #expect(try await queue.hash(job.id)["status"] == "queued")
        let calls = try await queue.redis.send("INFO", "commandstats").string ?? ""
        #expect(!calls.contains("cmdstat_wait:"), "\(calls)")
    }
}
