import FoundationEssentials
import RedisClient

/// The registry of live workers, the one module that writes and reads its keys:
/// `<prefix>:worker:<id>` (the worker's `WorkerInfo` as JSON, expiring) and
/// `<prefix>:workers` (ZSET worker id → last heartbeat, ms). A worker registers itself every
/// few seconds and deregisters when it stops; the inspector lists what is registered.
///
/// Every time in an entry is the Redis server's, like every time in the queue: a worker whose
/// clock is off must neither look dead to the others nor trim their entries as stale.
public struct WorkerRegistry: Sendable {
    let redis: any RedisClientProtocol
    let keys: QueueKeys

    /// Creates the registry on a connection.
    public init(redis: any RedisClientProtocol, keys: QueueKeys) {
        self.redis = redis
        self.keys = keys
    }

    /// Writes (or refreshes) a worker's entry, living `ttl`, and trims entries of the set
    /// that have not been refreshed for ten times `ttl`. The entry's `started_at` is the
    /// server's time less `uptime`, its `heartbeat_at` the server's time.
    /// - Returns: false when Redis is at maxmemory and refused the entry (the worker can go
    ///   on claiming and finishing jobs meanwhile; see docs/PROTOCOL.md §16).
    /// - Throws: `ImageQueueError` `.redis` when Redis does not answer.
    @discardableResult
    public func register(id: String, host: String, pid: Int, models: [String], uptime: Duration, currentJobs: [String],
                         master: SentinelMaster? = nil, ttl: Duration) async throws(ImageQueueError) -> Bool {
        let replies: [RESPValue]
        do {
            guard let now = try await redis.send("TIME").redisTimeMilliseconds else {
                throw ImageQueueError(.malformed, "unexpected reply from TIME")
            }
            var entry = WorkerInfo(id: id, host: host, pid: pid, models: models, startedAt: now - uptime.wholeMilliseconds,
                                   heartbeatAt: now, currentJobs: currentJobs)
            entry.redisMaster = master?.address
            entry.redisFailoverAt = master?.lastFailoverAt
            let json = try JSONEncoder().encode(entry)
            let milliseconds = ttl.wholeMilliseconds
            replies = try await redis.pipeline([
                RedisCommand("SET", keys.worker(id), Array(json), "PX", milliseconds),
                RedisCommand("ZADD", keys.workers, now, id),
                RedisCommand("ZREMRANGEBYSCORE", keys.workers, "-inf", now - milliseconds * 10),
            ])
        } catch {
            throw ImageQueueError.redis(error, operation: "register worker")
        }
        return !replies.contains { reply in
            if case .error(let text) = reply { return RedisError(.server, text).isOutOfMemory }
            return false
        }
    }

    /// Removes a worker's entry (a graceful stop; a crashed worker's entry expires instead).
    /// - Throws: `ImageQueueError` `.redis`.
    public func deregister(_ id: String) async throws(ImageQueueError) {
        do {
            _ = try await redis.pipeline([RedisCommand("DEL", keys.worker(id)), RedisCommand("ZREM", keys.workers, id)])
        } catch {
            throw ImageQueueError.redis(error, operation: "deregister worker")
        }
    }

    /// The workers registered now (their entries expire a few seconds after they stop),
    /// most recently seen first.
    /// - Throws: `ImageQueueError` `.redis`.
    public func list() async throws(ImageQueueError) -> [WorkerInfo] {
        let ids: [String]
        do {
            ids = try await redis.send("ZREVRANGE", keys.workers, "0", "999").array?.compactMap(\.string) ?? []
        } catch {
            throw ImageQueueError.redis(error, operation: "list workers")
        }
        if ids.isEmpty { return [] }
        let entries: RESPValue
        do {
            entries = try await redis.send(RedisCommand(arguments: (["MGET"] + ids.map(keys.worker)).map(\.redisBytes)))
        } catch {
            throw ImageQueueError.redis(error, operation: "list workers")
        }
        let decoder = JSONDecoder()
        return (entries.array ?? []).compactMap { $0.bytes }.compactMap { try? decoder.decode(WorkerInfo.self, from: Data($0)) }
    }
}
