import ImageQueue
import RedisClient

/// How long the worker waits before asking Redis again after a call failed.
enum RedisRetry {
    /// The pause after `failures` failures in a row (1 or more): 100 to 200 ms, then 125 to
    /// 250 ms. Short, so that the worker is at work again within a second of Redis being ready:
    /// a Redis that restarts answers LOADING for as long as it reads its data, and a pause that
    /// kept doubling would outlast the loading by seconds, leaving models idle and the jobs in
    /// flight unrecorded. An unreachable Redis is waited for in the connection itself (up to
    /// its reconnect deadline), not here.
    static func pause(afterFailures failures: Int) -> Duration {
        let ceiling = Int64(min(250, 100 << min(max(failures, 1), 6)))
        return .milliseconds(Int64.random(in: ceiling / 2...ceiling))
    }

    /// What a failed Redis call says about Redis, for the log: out of memory (it refuses
    /// writes at maxmemory; queued jobs still drain), else `otherwise`.
    static func problem(_ error: any Error, otherwise: String = "Redis unavailable") -> String {
        let redisError = (error as? ImageQueueError)?.redisError ?? (error as? RedisError)
        if (error as? ImageQueueError)?.code == .redisFull || redisError?.isOutOfMemory == true {
            return "Redis is out of memory (maxmemory reached with noeviction): it refuses new writes until memory is freed"
        }
        return otherwise
    }
}
