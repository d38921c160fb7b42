import FoundationEssentials
import ImageQueue
import Logging
import RedisClient

/// The front's shared state in Redis: the poller lease, the update offset and the pending
/// deliveries (keys in `TelegramKeys`, scripts in `lua/telegram/`). Every change a poller makes is
/// fenced by its lease: a front that lost the lease gets `LeadershipLost`.
struct FrontState: Sendable {
    let redis: any RedisClientProtocol
    /// A connection of its own for the standby's blocking wait.
    let blocking: any RedisClientProtocol
    let keys: TelegramKeys
    let logger: Logger

    /// Takes the lease when nobody holds it.
    func acquire(owner: String, ttl: Duration) async throws -> Bool {
        try await redis.send("SET", keys.lease, owner, "NX", "PX", ttl.wholeMilliseconds).string == "OK"
    }

    /// Extends the lease; false when `owner` no longer holds it.
    func renew(owner: String, ttl: Duration) async throws -> Bool {
        try await redis.send(.script(TelegramScripts.renewLease, keys: [keys.lease], arguments: [owner, ttl.wholeMilliseconds])).int == 1
    }

    /// Gives the lease up and wakes a standby.
    func release(owner: String, ttl: Duration) async throws {
        try await redis.send(.script(TelegramScripts.releaseLease, keys: [keys.lease, keys.handover],
                                     arguments: [owner, ttl.wholeMilliseconds]))
    }

    /// Waits until the lease may be free: it expires, or its holder hands it over.
    func waitForHandover(ttl: Duration) async throws {
        let remaining = try await redis.send("PTTL", keys.lease).int ?? -2
        if remaining == -2 { return }  // nobody holds it
        let wait = remaining < 0 ? ttl.wholeMilliseconds : min(remaining, ttl.wholeMilliseconds)
        let milliseconds = max(wait, 1)
        let fraction = String(milliseconds % 1000)
        let seconds = "\(milliseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
        _ = try await blocking.send(RedisCommand("BLPOP", keys.handover, seconds), timeout: .milliseconds(wait) + .seconds(5))
    }

    /// The next update id to ask for (0 when none was ever committed).
    func offset() async throws -> Int64 {
        try await redis.send("GET", keys.offset).int ?? 0
    }

    /// Records that the updates before `offset` are handled and, with a record, that its job
    /// is to be delivered. Returns whether the record is new.
    /// - Throws: `LeadershipLost` when `owner` does not hold the lease; `RedisError`.
    func commit(owner: String, offset: Int64, record: DeliveryRecord?) async throws -> Bool {
        let json = try record.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) } ?? ""
        do {
            return try await redis.send(.script(TelegramScripts.commitUpdate, keys: [keys.lease, keys.offset, keys.deliveries],
                                                arguments: [owner, offset, record?.job ?? "", json])).int == 1
        } catch let error as RedisError where error.serverCode == "NOT_LEADER" {
            throw LeadershipLost()
        }
    }

    /// Rewrites a pending delivery's record.
    /// - Throws: `LeadershipLost`; `RedisError`.
    func update(owner: String, record: DeliveryRecord) async throws {
        let json = String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
        do {
            try await redis.send(.script(TelegramScripts.updateDelivery, keys: [keys.lease, keys.deliveries],
                                         arguments: [owner, record.job, json]))
        } catch let error as RedisError where error.serverCode == "NOT_LEADER" {
            throw LeadershipLost()
        }
    }

    /// The delivery is done: forget it.
    func finish(job: String) async throws {
        try await redis.send("HDEL", keys.deliveries, job)
    }

    /// Every pending delivery. A record that cannot be read is reported and left in place
    /// for an operator (`HGET <deliveries> <job>`), never silently dropped.
    func pending() async throws -> [DeliveryRecord] {
        var records: [DeliveryRecord] = []
        for (job, json) in QueueInspector.hash(try await redis.send("HGETALL", keys.deliveries)) {
            if let record = try? JSONDecoder().decode(DeliveryRecord.self, from: Data(json.utf8)) {
                records.append(record)
            } else {
                logger.error("a pending delivery record is unreadable; left in Redis", metadata: [
                    "job.id": "\(job.prefix(128))", "redis.key": "\(keys.deliveries)"])
            }
        }
        return records
    }
}

/// This front no longer holds the poller lease: it must stop polling and delivering.
struct LeadershipLost: Error {}
