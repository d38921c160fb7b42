import ImageQueue
import RedisClient
import Synchronization
import Testing
import TestSupport

@Suite(.runsClients) struct WakeupTests {
    @Test func oneEnqueueWakesExactlyOneOfTenIdleWorkers() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        // Long blocks: however loaded the machine, no wait ends by its own timeout here.
        let workers = (0..<10).map { queue.worker("idle-\($0)", blockTimeout: .seconds(60)) }
        defer { workers.forEach { $0.close() } }
        let woken = Counter(), claims = Counter()
        let waiting = Task {
            await withTaskGroup(of: Void.self) { group in
                for worker in workers {
                    group.addTask {
                        // As a claim loop does: a wait that fails (a connect slowed past its
                        // timeout on a loaded machine) is made again, so all ten end up blocked.
                        while !Task.isCancelled {
                            guard (try? await worker.waitForWork(model: "flux")) == true else { continue }
                            woken.add()
                            if case .claimed = try? await worker.claim(model: "flux", lease: .seconds(30)) { claims.add() }
                            return
                        }
                    }
                }
            }
        }
        // Every BLPOP is blocked inside Redis before the enqueue.
        let blocked = try await eventually(within: .seconds(120)) {
            try await blockedClients(named: queue.configuration.keyPrefix, on: queue.redis) == 10
        }
        try #require(blocked, "the ten waits did not reach Redis")
        try await queue.enqueue("one job")
        _ = try await eventually { claims.value >= 1 }
        // The job is claimed and the doorbell is empty with nine waits still blocked: nothing
        // is left in Redis that could wake a second worker, now or later.
        #expect(try await queue.redis.send("LLEN", queue.keys.wake("flux")).int == 0)
        #expect(try await blockedClients(named: queue.configuration.keyPrefix, on: queue.redis) == 9)
        #expect(woken.value == 1)
        #expect(claims.value == 1)
        waiting.cancel()  // the other nine are still blocked: cancelling ends them
        await waiting.value
    }

    @Test func anIdleWorkerWakesOnEnqueueWithoutWaitingForItsTimeout() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let worker = queue.worker(blockTimeout: .seconds(20))
        defer { worker.close() }
        let waiting = Task { try await worker.waitForWork(model: "flux") }
        try await Task.sleep(for: .milliseconds(100))
        try await queue.enqueue("wake up")
        // A 20 s block that returned true was woken by the enqueue, not by its timeout.
        #expect(try await waiting.value == true)
    }

    @Test func aFinishedJobWakesAWorkerForTheNextWhenTheModelWasFull() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        try await queue.enqueue("first")
        try await queue.enqueue("second")
        let busy = queue.worker("busy")
        let idle = queue.worker("idle", blockTimeout: .seconds(20))
        defer { busy.close(); idle.close() }
        let first = try await queue.claim(busy)
        try await queue.redis.send("DEL", queue.keys.wake("flux"))  // the token left by the enqueues
        #expect(try await idle.claim(model: "flux", lease: .seconds(30)) == .full)
        let waiting = Task { try await idle.waitForWork(model: "flux") }
        try await Task.sleep(for: .milliseconds(100))
        try await busy.complete(first, result: sampleResult)
        #expect(try await waiting.value == true)
        #expect(try await queue.claim(idle).payload.prompt == "second")
    }

    @Test func waitThenClaimReturnsTheJobEnqueuedWhileItWaits() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let worker = queue.worker(blockTimeout: .seconds(300))
        defer { worker.close() }
        let started = ContinuousClock.now
        let waiting = Task { try await worker.waitThenClaim(model: "flux", lease: .seconds(30), upTo: 4) }
        #expect(try await eventually { try await blockedClients(named: queue.configuration.keyPrefix, on: queue.redis) == 1 })
        let job = try await queue.enqueue("wake up")
        let outcome = try await waiting.value
        guard case .claimed(let jobs) = outcome else {
            Issue.record("no job: \(outcome)")
            return
        }
        #expect(jobs.map(\.id) == [job.id])
        #expect(jobs.first?.token.isEmpty == false)
        // Woken by the enqueue, not by the end of its 300 s block (far apart even when the
        // whole suite loads the machine).
        #expect(ContinuousClock.now - started < .seconds(150))
        // The job is leased to this worker, with the token it was given.
        let lease = try await queue.redis.send("ZSCORE", queue.keys.active("flux"), job.id)
        #expect(!lease.isNull)
    }

    @Test func waitThenClaimClaimsWhenItsWaitTimesOut() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let job = try await queue.enqueue("no doorbell")
        try await queue.redis.send("DEL", queue.keys.wake("flux"))  // the token is lost
        let worker = queue.worker(blockTimeout: .seconds(1))
        defer { worker.close() }
        // The claim behind the BLPOP runs when the wait times out: a lost token costs one block.
        let outcome = try await worker.waitThenClaim(model: "flux", lease: .seconds(30), upTo: 1)
        guard case .claimed(let jobs) = outcome else {
            Issue.record("no job: \(outcome)")
            return
        }
        #expect(jobs.map(\.id) == [job.id])
    }

    @Test func aCancelledWaitThenClaimHoldsNothing() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let worker = queue.worker(blockTimeout: .seconds(60))
        defer { worker.close() }
        let waiting = Task { try await worker.waitThenClaim(model: "flux", lease: .seconds(30), upTo: 1) }
        #expect(try await eventually { try await blockedClients(named: queue.configuration.keyPrefix, on: queue.redis) == 1 })
        waiting.cancel()
        // The claim may have run: it is asked for again under its claim id, which finds the
        // queue empty here.
        #expect(try await waiting.value == .empty)
        #expect(try await queue.redis.send("ZCARD", queue.keys.active("flux")).int == 0)
        // The next job goes to whoever claims it.
        let job = try await queue.enqueue("after the cancel")
        #expect(try await queue.claim(queue.worker("w2")).id == job.id)
    }

    @Test func aRedisRestartDuringABlockingWaitIsSurvived() async throws {
        let server = try await RedisServer.launch()
        let queue = try QueueFixture(url: server.url)
        defer { queue.close() }
        let worker = queue.worker(blockTimeout: .milliseconds(500))
        defer { worker.close() }
        // A worker loop: wait, claim, repeat; errors while Redis is down are retried.
        let claimed = Task { () -> String? in
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                do {
                    if case .claimed(let job) = try await worker.claim(model: "flux", lease: .seconds(30)) { return job.id }
                    _ = try await worker.waitForWork(model: "flux")
                } catch {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            return nil
        }
        try await Task.sleep(for: .milliseconds(300))  // the worker is inside BLPOP now
        try await server.restart()
        let job = try await queue.enqueue("after the restart")
        #expect(try await claimed.value == job.id)
    }
}

/// A counter tasks can share.
final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// How many clients with this name are blocked (flag `b`) in Redis now.
func blockedClients(named name: String, on redis: RedisConnection) async throws -> Int {
    let text = try await redis.send("CLIENT", "LIST").string ?? ""
    return text.split(whereSeparator: \.isNewline).filter { line in
        let fields = line.split(separator: " ")
        return fields.contains(Substring("name=\(name)")) && fields.contains { $0.hasPrefix("flags=") && $0.contains("b") }
    }.count
}

