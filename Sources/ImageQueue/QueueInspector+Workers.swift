import FoundationEssentials
import RedisClient

extension QueueInspector {
    /// The workers registered now (their entries expire a few seconds after they stop),
    /// most recently seen first.
    /// - Throws: `ImageQueueError` `.redis`.
    public func workers() async throws(ImageQueueError) -> [WorkerInfo] {
        let keys = configuration.keys
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
