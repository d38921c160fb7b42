import RedisClient

extension QueueInspector {
    /// The jobs with these ids, in the same order, skipping ids with no job; one round trip.
    /// - Throws: `ImageQueueError` `.redis`.
    public func jobs(_ ids: [String]) async throws(ImageQueueError) -> [JobInfo] {
        let parsed = ids.compactMap { try? JobID($0) }
        if parsed.isEmpty { return [] }
        let replies: [RESPValue]
        do {
            replies = try await redis.pipeline(parsed.map { RedisCommand("HGETALL", configuration.keys.job($0)) })
        } catch {
            throw ImageQueueError.redis(error, operation: "read jobs")
        }
        return zip(parsed, replies).compactMap { id, reply in
            let hash = Self.hash(reply)
            return hash.isEmpty ? nil : try? JobInfo(id: id, hash: hash, position: nil)
        }
    }

    /// The jobs a model runs now (holding a lease), longest-running first.
    /// - Throws: `ImageQueueError` `.redis`.
    public func runningJobs(model: String, limit: Int = 50) async throws(ImageQueueError) -> [JobInfo] {
        let reply: RESPValue
        do {
            reply = try await redis.send("ZRANGE", configuration.keys.active(model), "0", String(max(0, limit - 1)))
        } catch {
            throw ImageQueueError.redis(error, operation: "running jobs")
        }
        let running = try await jobs((reply.array ?? []).compactMap(\.string))
        return running.sorted { ($0.startedAt ?? 0) < ($1.startedAt ?? 0) }
    }

    /// The most recently dead-lettered jobs of a model, newest first.
    /// - Throws: `ImageQueueError` `.redis`.
    public func recentDeadJobs(model: String, limit: Int = 24) async throws(ImageQueueError) -> [JobInfo] {
        let reply: RESPValue
        do {
            reply = try await redis.send("ZREVRANGE", configuration.keys.dead(model), "0", String(max(0, limit - 1)))
        } catch {
            throw ImageQueueError.redis(error, operation: "dead jobs")
        }
        return try await jobs((reply.array ?? []).compactMap(\.string))
    }
}
