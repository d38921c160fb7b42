import RedisClient

/// Finished images kept in Redis (the worker's `redis` result store), the one module that
/// writes and reads them: `<prefix>:{<model>}:result:<id>` (image k > 0 of a job that made
/// several: `…:result:<id>:<k>`), under the job's hash tag and a TTL. The key is recorded on
/// the job's result, so a reader fetches what the writer wrote.
public struct ResultBlobs: Sendable {
    let redis: any RedisClientProtocol
    let keys: QueueKeys

    /// Creates the store on a connection.
    public init(redis: any RedisClientProtocol, keys: QueueKeys) {
        self.redis = redis
        self.keys = keys
    }

    /// Stores the bytes of a job's image `index` (0-based) for `ttl` and returns their key.
    /// - Throws: `ImageQueueError` `.redisFull` while Redis is at maxmemory (nothing stored:
    ///   the caller keeps the bytes and tries again), `.redis`.
    public func write(_ bytes: [UInt8], for id: JobID, index: Int = 0, ttl: Duration) async throws(ImageQueueError) -> String {
        let key = keys.result(id, index: index)
        do {
            try await redis.send(RedisCommand("SET", key, bytes, "PX", ttl.wholeMilliseconds))
        } catch {
            throw ImageQueueError.redis(error, operation: "store result", jobID: id.rawValue)
        }
        return key
    }

    /// The bytes of a job's image `index` (at `key`, as recorded on its result, else the
    /// image's own key), nil once they have expired.
    /// - Throws: `ImageQueueError` `.redis`.
    public func read(_ id: JobID, index: Int = 0, key: String? = nil) async throws(ImageQueueError) -> [UInt8]? {
        do {
            return try await redis.send("GET", key ?? keys.result(id, index: index)).bytes
        } catch {
            throw ImageQueueError.redis(error, operation: "read result", jobID: id.rawValue)
        }
    }
}
