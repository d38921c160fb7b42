@testable import RedisClient
import Testing

/// How soon a connection tries again while Redis is away.
@Suite struct RedisReconnectPolicyTests {
    /// Workers must claim again within a second of Redis answering after an outage
    /// (`ops/chaos.py` checks it end to end). However long Redis was away, the next attempt
    /// is at most a quarter of a second off, so the connection itself never holds that up.
    @Test func reconnectAttemptsAreNeverMoreThanAQuarterSecondApart() throws {
        let configuration = try RedisConfiguration(url: "redis://127.0.0.1:6379")
        var longest = (attempt: 0, delay: Duration.zero)
        var shortest = Duration.seconds(1)
        for attempt in 0..<64 {
            for _ in 0..<20 {
                let delay = configuration.backoff(attempt: attempt)
                if delay > longest.delay { longest = (attempt, delay) }
                shortest = min(shortest, delay)
            }
        }
        #expect(longest.delay <= .milliseconds(250), "attempt \(longest.attempt) waits \(longest.delay)")
        #expect(shortest >= .milliseconds(1))
    }

    @Test func reconnectDelaysStillGrowFromTheFirstAttempt() throws {
        let configuration = try RedisConfiguration(url: "redis://127.0.0.1:6379")
        // Full jitter over [half, whole] of 50 ms, 100 ms, 200 ms, then the 250 ms cap.
        for _ in 0..<20 {
            #expect(configuration.backoff(attempt: 0) <= .milliseconds(50))
            #expect(configuration.backoff(attempt: 1) >= .milliseconds(50))
            #expect(configuration.backoff(attempt: 3) >= .milliseconds(125))
        }
    }
}
