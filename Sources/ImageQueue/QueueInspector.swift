import FoundationEssentials
import RedisClient

/// Read-only questions about jobs and queues. Changes nothing in Redis, so the CLI, the
/// HTTP server and dashboards can all sit on it.
public struct QueueInspector: Sendable {
    let redis: any RedisClientProtocol
    /// The settings (models and key prefix) it reads with.
    public let configuration: QueueConfiguration
    private var keys: QueueKeys { configuration.keys }

    /// Creates an inspector on a connection.
    public init(redis: any RedisClientProtocol, configuration: QueueConfiguration) {
        self.redis = redis
        self.configuration = configuration
    }

    /// Everything about a job, in one round trip.
    /// - Throws: `ImageQueueError` `.invalidJobID`, `.notFound`, `.malformed`, `.redis`.
    /// A queued job's `etaMilliseconds` is computed from its position now, the model's
    /// concurrency, running jobs and recent run times (the same estimate as the `eta_ms` of
    /// its `queued` event, see `QueueETA`).
    /// - Throws: `ImageQueueError` `.invalidJobID`, `.notFound`, `.malformed`, `.redis`.
    public func status(_ id: String) async throws(ImageQueueError) -> JobInfo {
        let jobID = try JobID(id)
        let replies = try await pipeline([RedisCommand("HGETALL", keys.job(jobID)),
                                          RedisCommand("ZRANK", keys.pending(jobID.model), jobID.rawValue),
                                          RedisCommand("HMGET", keys.meta(jobID.model), "concurrency", "paused", "run_ms_avg"),
                                          RedisCommand("ZCARD", keys.active(jobID.model))],
                                         operation: "status", jobID: id)
        let hash = Self.hash(replies[0])
        if hash.isEmpty { throw ImageQueueError(.notFound, "job \(id) does not exist", jobID: id) }
        var info = try JobInfo(id: jobID, hash: hash, position: replies[1].int.map { Int($0) + 1 })
        if let position = info.position {
            let meta = replies[2].array ?? []
            info.etaMilliseconds = QueueETA.estimate(
                position: position, concurrency: meta.first?.int.map { Int($0) } ?? 1,
                running: Int(replies[3].int ?? 0), paused: meta.count > 1 && meta[1].string == "1",
                averageRunMilliseconds: meta.count > 2 ? meta[2].int : nil)
        }
        if info.lastEvent == nil, info.status == .queued {
            // Never claimed: enqueueJob publishes the `queued` event without storing it (a
            // small hash stays compact); it is this, with the position and ETA of now.
            info.lastEvent = Self.queuedEvent(info, revision: hash["rev"].flatMap { Int64($0) } ?? 1)
        }
        return info
    }

    /// The `queued` event of a job that was never claimed, from its fields (PROTOCOL.md).
    static func queuedEvent(_ info: JobInfo, revision: Int64) -> StatusEvent? {
        var fields: [String: JSONValue] = [
            "v": .int(1), "id": .string(info.id), "model": .string(info.model), "status": .string(JobStatus.queued.rawValue),
            "time": .int(info.enqueuedAt ?? 0), "attempt": .int(Int64(info.attempt)), "rev": .int(revision),
        ]
        if let position = info.position { fields["position"] = .int(Int64(position)) }
        if let eta = info.etaMilliseconds { fields["eta_ms"] = .int(eta) }
        guard let json = try? JSONEncoder().encode(fields) else { return nil }
        return try? StatusEvent(json: Array(json))
    }

    /// The job's place in its queue (1 = next to be claimed), nil when it is not queued.
    /// O(log n) in the queue's length.
    /// - Throws: `ImageQueueError` `.invalidJobID`, `.redis`.
    public func position(_ id: String) async throws(ImageQueueError) -> Int? {
        let jobID = try JobID(id)
        let reply = try await send(RedisCommand("ZRANK", keys.pending(jobID.model), jobID.rawValue), operation: "position")
        return reply.int.map { Int($0) + 1 }
    }

    /// The model's concurrency limit (1 when never set).
    /// - Throws: `ImageQueueError` `.redis`.
    public func concurrency(model: String) async throws(ImageQueueError) -> Int {
        let reply = try await send(RedisCommand("HGET", keys.meta(model), "concurrency"), operation: "concurrency")
        return reply.int.map { Int($0) } ?? 1
    }

    /// Counts for each configured model, in two round trips.
    /// - Throws: `ImageQueueError` `.redis`.
    public func stats() async throws(ImageQueueError) -> [String: QueueStats] {
        let models = configuration.models
        var commands: [RedisCommand] = []
        for model in models {
            commands += [RedisCommand("ZCARD", keys.pending(model)), RedisCommand("ZCARD", keys.active(model)),
                         RedisCommand("ZCARD", keys.dead(model)),
                         RedisCommand("HMGET", keys.meta(model), "concurrency", "completed_total", "failed_total",
                                      "paused", "run_ms_avg"),
                         RedisCommand("ZRANGE", keys.pending(model), "0", "0"), RedisCommand("TIME")]
        }
        let replies = try await pipeline(commands, operation: "stats")
        var result: [String: QueueStats] = [:]
        var oldest: [(model: String, id: String, now: Int64)] = []
        for (index, model) in models.enumerated() {
            let r = Array(replies[(index * 6)..<(index * 6 + 6)])
            let meta = r[3].array ?? []
            result[model] = QueueStats(
                pending: Int(r[0].int ?? 0), active: Int(r[1].int ?? 0), dead: Int(r[2].int ?? 0),
                concurrency: meta.first?.int.map { Int($0) } ?? 1,
                completedTotal: meta.count > 1 ? Int(meta[1].int ?? 0) : 0,
                failedTotal: meta.count > 2 ? Int(meta[2].int ?? 0) : 0,
                oldestPendingAgeMilliseconds: nil,
                paused: meta.count > 3 && meta[3].string == "1",
                averageRunMilliseconds: meta.count > 4 ? meta[4].int : nil)
            if let head = r[4].array?.first?.string, let now = r[5].redisTimeMilliseconds {
                oldest.append((model, head, now))
            }
        }
        if !oldest.isEmpty {
            let times = try await pipeline(oldest.map { RedisCommand("HGET", keys.jobPrefix($0.model) + $0.id, "enqueued_at") },
                                           operation: "stats")
            for (entry, time) in zip(oldest, times) {
                if let enqueued = time.int { result[entry.model]?.oldestPendingAgeMilliseconds = max(0, entry.now - enqueued) }
            }
        }
        return result
    }

    /// The Redis server's clock, ms since the epoch: the clock every time in the queue is on.
    /// - Throws: `ImageQueueError` `.redis`.
    public func serverTime() async throws(ImageQueueError) -> Int64 {
        guard let now = try await send(RedisCommand("TIME"), operation: "time").redisTimeMilliseconds else {
            throw ImageQueueError(.malformed, "unexpected reply from TIME")
        }
        return now
    }

    /// The oldest dead jobs of a model, oldest first.
    /// - Throws: `ImageQueueError` `.redis`.
    public func deadJobs(model: String, limit: Int = 100) async throws(ImageQueueError) -> [JobInfo] {
        let ids = try await send(RedisCommand("ZRANGE", keys.dead(model), "0", String(max(0, limit - 1))), operation: "dead list")
        let jobIDs = (ids.array ?? []).compactMap { $0.string }.compactMap { try? JobID($0) }
        if jobIDs.isEmpty { return [] }
        let hashes = try await pipeline(jobIDs.map { RedisCommand("HGETALL", keys.job($0)) }, operation: "dead list")
        return zip(jobIDs, hashes).map { id, reply in
            let hash = Self.hash(reply)
            if let info = try? JobInfo(id: id, hash: hash, position: nil) { return info }
            // A dead entry without a readable job hash still shows up, so it can be purged.
            return (try? JobInfo(id: id, hash: ["status": "failed", "error": #"{"code":"malformed_job","message":"job hash is missing"}"#],
                                 position: nil))!
        }
    }

    // MARK: - Plumbing

    /// A HGETALL reply as a dictionary (pairs that are not both strings are skipped).
    package static func hash(_ reply: RESPValue) -> [String: String] {
        guard let items = reply.array else { return [:] }
        var hash: [String: String] = [:]
        var index = 0
        while index + 1 < items.count {
            if let key = items[index].string, let value = items[index + 1].string { hash[key] = value }
            index += 2
        }
        return hash
    }

    private func send(_ command: RedisCommand, operation: String) async throws(ImageQueueError) -> RESPValue {
        do {
            return try await redis.send(command)
        } catch {
            throw ImageQueueError.redis(error, operation: operation)
        }
    }

    /// Runs read commands together; any error reply (NOAUTH, WRONGTYPE...) fails the whole
    /// read rather than being mistaken for an empty value.
    private func pipeline(_ commands: [RedisCommand], operation: String, jobID: String? = nil) async throws(ImageQueueError) -> [RESPValue] {
        let replies: [RESPValue]
        do {
            replies = try await redis.pipeline(commands)
        } catch {
            throw ImageQueueError.redis(error, operation: operation, jobID: jobID)
        }
        for reply in replies {
            if case .error(let text) = reply {
                throw ImageQueueError.redis(RedisError(.server, text), operation: operation, jobID: jobID)
            }
        }
        return replies
    }
}

/// One model's queue at a glance.
public struct QueueStats: Sendable, Equatable, Codable {
    /// Jobs waiting.
    public var pending: Int
    /// Jobs running (holding a lease).
    public var active: Int
    /// Jobs in the dead list.
    public var dead: Int
    /// How many may run at once across all workers.
    public var concurrency: Int
    /// Jobs completed since the queue was created.
    public var completedTotal: Int
    /// Jobs dead-lettered since the queue was created.
    public var failedTotal: Int
    /// Age of the job at the head of the queue, ms; nil when empty.
    @NullWhenNil public var oldestPendingAgeMilliseconds: Int64?
    /// Paused: no worker claims its jobs until it is resumed.
    public var paused: Bool = false
    /// The moving average of its recent run times (claim to completion), ms; nil before the
    /// first completion. Queued jobs' ETAs come from it.
    @NullWhenNil public var averageRunMilliseconds: Int64?

    enum CodingKeys: String, CodingKey {
        case pending, active, dead, concurrency, completedTotal = "completed_total", failedTotal = "failed_total"
        case oldestPendingAgeMilliseconds = "oldest_pending_age_ms", paused, averageRunMilliseconds = "run_ms_avg"
    }

    /// Decodes a stats object; `paused` and `run_ms_avg` may be absent (older servers).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        pending = try container.decode(Int.self, forKey: .pending)
        active = try container.decode(Int.self, forKey: .active)
        dead = try container.decode(Int.self, forKey: .dead)
        concurrency = try container.decode(Int.self, forKey: .concurrency)
        completedTotal = try container.decode(Int.self, forKey: .completedTotal)
        failedTotal = try container.decode(Int.self, forKey: .failedTotal)
        oldestPendingAgeMilliseconds = try container.decodeIfPresent(Int64.self, forKey: .oldestPendingAgeMilliseconds)
        paused = try container.decodeIfPresent(Bool.self, forKey: .paused) ?? false
        averageRunMilliseconds = try container.decodeIfPresent(Int64.self, forKey: .averageRunMilliseconds)
    }

    /// Creates the counts of one queue.
    public init(pending: Int, active: Int, dead: Int, concurrency: Int, completedTotal: Int, failedTotal: Int,
                oldestPendingAgeMilliseconds: Int64?, paused: Bool = false, averageRunMilliseconds: Int64? = nil) {
        self.pending = pending
        self.active = active
        self.dead = dead
        self.concurrency = concurrency
        self.completedTotal = completedTotal
        self.failedTotal = failedTotal
        self.oldestPendingAgeMilliseconds = oldestPendingAgeMilliseconds
        self.paused = paused
        self.averageRunMilliseconds = averageRunMilliseconds
    }

}

/// The expected wait of a queued job, the estimate the scripts put in `queued` events as
/// `eta_ms` (lua/includes/common.lua `etaOf`; the two are tested to agree): 0 when a slot is
/// free for it, otherwise the completions it waits for (its position minus the free slots)
/// at the model's average run time spread over its concurrency, the running jobs being half
/// done on average. nil without a run-time history, or while the model is paused.
public enum QueueETA {
    /// The estimate in ms.
    public static func estimate(position: Int, concurrency: Int, running: Int, paused: Bool,
                                averageRunMilliseconds: Int64?) -> Int64? {
        guard let average = averageRunMilliseconds, !paused, position >= 1 else { return nil }
        let limit = max(1, concurrency)
        let free = max(0, limit - running)
        if position <= free { return 0 }
        return Int64((Double(average) * (Double(position - free) - 0.5) / Double(limit) + 0.5).rounded(.down))
    }

    /// An expected wait as people say it (every front says it the same way): nil under half
    /// a second (it starts at once); `about 7 s` up to 10 s; then to the nearest 5 s up to
    /// 90 s (`about 40 s`); then in minutes (`about 3 min`), and past 90 minutes in hours
    /// (`about 2 h`).
    public static func phrase(milliseconds: Int64) -> String? {
        guard milliseconds >= 500 else { return nil }
        let seconds = milliseconds / 1000 + (milliseconds % 1000 >= 500 ? 1 : 0)
        if seconds <= 10 { return "about \(seconds) s" }
        if seconds <= 90 { return "about \((seconds + 2) / 5 * 5) s" }
        let minutes = (seconds + 30) / 60
        if minutes <= 90 { return "about \(minutes) min" }
        return "about \((minutes + 30) / 60) h"
    }
}
