@testable import ImageWorker
import Testing

/// How long the worker waits before asking Redis again after a failure (claim loops, and
/// recording a job's end).
@Suite struct RedisRetryTests {
    /// A Redis that restarts answers LOADING while it reads its data, seconds for a large one:
    /// however many calls failed, the worker asks again within a quarter of a second, so it is
    /// at work within a second of Redis being ready (ops/chaos.py checks it end to end).
    @Test func theWorkerAsksRedisAgainWithinAQuarterSecond() {
        var longest = (failures: 0, pause: Duration.zero)
        var shortest = Duration.seconds(1)
        for failures in 1...64 {
            for _ in 0..<20 {
                let pause = RedisRetry.pause(afterFailures: failures)
                if pause > longest.pause { longest = (failures, pause) }
                shortest = min(shortest, pause)
            }
        }
        #expect(longest.pause <= .milliseconds(250), "after \(longest.failures) failures it waits \(longest.pause)")
        #expect(shortest >= .milliseconds(50), "it never spins")
    }
}
