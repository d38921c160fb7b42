#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import RedisClient

/// The log-scale buckets of the per-minute counters (lua/includes/common.lua `recordStats`):
/// bucket b holds the durations d (ms) with floor(4 log2(1 + d)) = b, four per doubling, so a
/// percentile read from them is within about 9 % of the true one.
public enum StatsBuckets {
    /// The bucket of a duration in ms, as the scripts compute it.
    public static func bucket(milliseconds: Int64) -> Int {
        Int((log(1 + Double(max(0, milliseconds))) * 5.770780163555854).rounded(.down))
    }

    /// The duration a bucket stands for: the geometric middle of its range, in whole ms.
    public static func representative(_ bucket: Int) -> Int64 {
        Int64((pow(2, (Double(bucket) + 0.5) / 4) - 1).rounded())
    }

    /// The p-th percentile (0 < p <= 1) of the durations counted per bucket; nil when none.
    public static func percentile(_ p: Double, of counts: [Int: Int]) -> Int64? {
        let total = counts.values.reduce(0, +)
        guard total > 0 else { return nil }
        let rank = max(1, Int((p * Double(total)).rounded(.up)))
        var seen = 0
        for bucket in counts.keys.sorted() {
            seen += counts[bucket] ?? 0
            if seen >= rank { return representative(bucket) }
        }
        return nil
    }
}

/// The 50th and 95th percentiles of some durations, ms.
public struct DurationPercentiles: Sendable, Equatable, Encodable {
    public var p50: Int64
    public var p95: Int64

    init?(_ counts: [Int: Int]) {
        guard let p50 = StatsBuckets.percentile(0.5, of: counts), let p95 = StatsBuckets.percentile(0.95, of: counts) else { return nil }
        self.p50 = p50
        self.p95 = p95
    }
}

/// The jobs of one model that ended in one minute.
public struct MinuteStats: Sendable, Equatable, Encodable {
    /// The minute's start, ms since the epoch (Redis clock).
    public var minute: Int64
    /// Jobs completed in it.
    public var completed: Int
    /// Jobs dead-lettered in it.
    public var failed: Int
    /// Queue wait (enqueued to the start of the last attempt) of the jobs completed in it.
    @NullWhenNil public var waitMilliseconds: DurationPercentiles?
    /// Run time (the last attempt's start to completion) of the jobs completed in it.
    @NullWhenNil public var runMilliseconds: DurationPercentiles?

    enum CodingKeys: String, CodingKey { case minute, completed, failed, waitMilliseconds = "wait_ms", runMilliseconds = "run_ms" }

}

/// One model's last minutes: totals, percentiles over the whole window, and each minute.
public struct ModelMinuteStats: Sendable, Equatable, Encodable {
    public var completed: Int
    public var failed: Int
    @NullWhenNil public var waitMilliseconds: DurationPercentiles?
    @NullWhenNil public var runMilliseconds: DurationPercentiles?
    /// Oldest first; the last is the current (unfinished) minute.
    public var series: [MinuteStats]

    enum CodingKeys: String, CodingKey {
        case completed, failed, waitMilliseconds = "wait_ms", runMilliseconds = "run_ms", series
    }

}

/// `GET /v1/stats`: every configured model's last minutes.
public struct StatsReport: Sendable, Equatable, Encodable {
    /// How many minutes each series holds.
    public var minutes: Int
    /// The first minute's start, ms since the epoch.
    public var from: Int64
    /// When it was read (Redis clock).
    public var generatedAt: Int64
    public var models: [String: ModelMinuteStats]

    enum CodingKeys: String, CodingKey { case minutes, from, generatedAt = "generated_at", models }
}

/// Counts of one minute's HASH, parsed.
struct MinuteCounts {
    var completed = 0
    var failed = 0
    var wait: [Int: Int] = [:]
    var run: [Int: Int] = [:]

    /// Adds a field `<c|f>[|w<b>|r<b>]` counted `count` times; other fields are skipped.
    mutating func add(field: String, count: Int) {
        let parts = field.split(separator: "|")
        guard let outcome = parts.first, count > 0 else { return }
        switch outcome {
        case "c": completed += count
        case "f": failed += count; return   // percentiles are of completed jobs
        default: return
        }
        for part in parts.dropFirst() {
            guard let kind = part.first, let bucket = Int(part.dropFirst()), bucket >= 0 else { continue }
            if kind == "w" { wait[bucket, default: 0] += count } else if kind == "r" { run[bucket, default: 0] += count }
        }
    }

    mutating func merge(_ other: MinuteCounts) {
        completed += other.completed
        failed += other.failed
        wait.merge(other.wait, uniquingKeysWith: +)
        run.merge(other.run, uniquingKeysWith: +)
    }
}

extension QueueInspector {
    /// How many minutes the scripts' counters are kept (their TTL is 2 h), and so the most
    /// `minuteStats` reads.
    public static let maxStatsMinutes = 120

    /// The last `minutes` minutes (1 to `maxStatsMinutes`, the current one included) of every
    /// configured model, from the per-minute counters the scripts keep: in two round trips.
    /// - Throws: `ImageQueueError` `.invalidRequest` for another number, `.redis`.
    public func minuteStats(minutes: Int) async throws(ImageQueueError) -> StatsReport {
        guard (1...Self.maxStatsMinutes).contains(minutes) else {
            throw ImageQueueError(.invalidRequest, "minutes must be from 1 to \(Self.maxStatsMinutes)")
        }
        let now = try await serverTime()
        let current = now / 60_000
        let first = current - Int64(minutes) + 1
        let models = configuration.models
        var commands: [RedisCommand] = []
        for model in models {
            for minute in first...current { commands.append(RedisCommand("HGETALL", configuration.keys.statsMinute(model, minute: minute))) }
        }
        let replies: [RESPValue]
        do {
            replies = try await redis.pipeline(commands)
        } catch {
            throw ImageQueueError.redis(error, operation: "stats")
        }
        var report: [String: ModelMinuteStats] = [:]
        for (index, model) in models.enumerated() {
            var total = MinuteCounts()
            var series: [MinuteStats] = []
            for offset in 0..<minutes {
                var counts = MinuteCounts()
                for (field, value) in Self.hash(replies[index * minutes + offset]) { counts.add(field: field, count: Int(value) ?? 0) }
                total.merge(counts)
                series.append(MinuteStats(minute: (first + Int64(offset)) * 60_000, completed: counts.completed, failed: counts.failed,
                                          waitMilliseconds: DurationPercentiles(counts.wait), runMilliseconds: DurationPercentiles(counts.run)))
            }
            report[model] = ModelMinuteStats(completed: total.completed, failed: total.failed,
                                             waitMilliseconds: DurationPercentiles(total.wait), runMilliseconds: DurationPercentiles(total.run),
                                             series: series)
        }
        return StatsReport(minutes: minutes, from: first * 60_000, generatedAt: now, models: report)
    }

    /// The latest completed jobs of every configured model, newest first, at most `limit`:
    /// from each model's recent list in Redis (so every server shows the same, across
    /// restarts), skipping jobs that expired or are no longer completed.
    /// - Throws: `ImageQueueError` `.redis`.
    public func recentCompletions(limit: Int = 24) async throws(ImageQueueError) -> [JobInfo] {
        guard limit > 0 else { return [] }
        // Each model's newest `limit` ids in one round trip; a model whose page held expired
        // jobs is read further, page by page, until it has `limit` or its list ends.
        var found: [String: [JobInfo]] = [:]
        var offset = 0
        var open = configuration.models
        while !open.isEmpty {
            let replies: [RESPValue]
            do {
                replies = try await redis.pipeline(open.map {
                    RedisCommand("LRANGE", configuration.keys.recent($0), String(offset), String(offset + limit - 1))
                })
            } catch {
                throw ImageQueueError.redis(error, operation: "recent completions")
            }
            var next: [String] = []
            for (model, reply) in zip(open, replies) {
                if case .error(let text) = reply { throw ImageQueueError.redis(RedisError(.server, text), operation: "recent completions") }
                let ids = (reply.array ?? []).compactMap(\.string)
                let known = Set((found[model] ?? []).map(\.id))
                found[model, default: []] += try await jobs(ids.filter { !known.contains($0) }).filter { $0.status == .completed }
                if ids.count == limit, (found[model]?.count ?? 0) < limit { next.append(model) }
            }
            open = next
            offset += limit
        }
        let all = found.values.flatMap { $0 }.sorted { ($0.finishedAt ?? 0) > ($1.finishedAt ?? 0) }
        return Array(all.prefix(limit))
    }
}
