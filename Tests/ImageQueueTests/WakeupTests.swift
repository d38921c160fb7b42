import ImageQueue
import RedisClient
import Synchronization
import Testing
import TestSupport

@Suite struct WakeupTests {
    @Test func oneEnqueueWakesExactlyOneOfTenIdleWorkers() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let workers = (0..<10).map { queue.worker("idle-\($0)", blockTimeout: .seconds(2)) }
        defer { workers.forEach { $0.close() } }
        let ready = Counter(), woken = Counter(), claims = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in workers {
                group.addTask {
                    ready.add()
                    if try await worker.waitForWork(model: "flux") {
                        woken.add()
                        if case .claimed = try await worker.claim(model: "flux", lease: .seconds(30)) {
                            claims.add()
                        }
                    }
                }
            }
            while ready.value < 10 { try await Task.sleep(for: .milliseconds(5)) }
            try await Task.sleep(for: .milliseconds(200))  // let every BLPOP reach Redis
            try await queue.enqueue("one job")
            try await group.waitForAll()
        }
        #expect(woken.value == 1)
        #expect(claims.value == 1)
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
