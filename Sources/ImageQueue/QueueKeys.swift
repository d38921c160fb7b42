/// Every Redis key and channel name of the job queue, built in this one place. A front built
/// on the library keeps its own keys under the same prefix, in its own module.
///
/// A model's keys all carry the hash tag `{<model>}`, so each model's state lives in one
/// Redis Cluster slot and a script may touch any of it. See docs/PROTOCOL.md.
public struct QueueKeys: Sendable, Equatable {
    /// The prefix before every key, `iq` by default.
    public let prefix: String

    /// Creates the key set for a prefix.
    public init(prefix: String) { self.prefix = prefix }

    private func base(_ model: String) -> String { "\(prefix):{\(model)}:" }

    /// ZSET of queued job ids, scored by enqueue sequence (lowest = next).
    public func pending(_ model: String) -> String { base(model) + "pending" }
    /// ZSET of running job ids, scored by lease deadline (ms).
    public func active(_ model: String) -> String { base(model) + "active" }
    /// ZSET of dead-lettered job ids, scored by time of death (ms).
    public func dead(_ model: String) -> String { base(model) + "dead" }
    /// HASH of the model's settings and counters.
    public func meta(_ model: String) -> String { base(model) + "meta" }
    /// LIST holding at most one wake-up token for idle workers.
    public func wake(_ model: String) -> String { base(model) + "wake" }
    /// Enqueue sequence counter.
    public func sequence(_ model: String) -> String { base(model) + "seq" }
    /// Fencing token counter.
    public func fence(_ model: String) -> String { base(model) + "fence" }
    /// Prefix of the model's job hashes.
    public func jobPrefix(_ model: String) -> String { base(model) + "job:" }
    /// A job's HASH.
    public func job(_ id: JobID) -> String { jobPrefix(id.model) + id.rawValue }
    /// A finished job's image bytes (redis result store), under a TTL.
    public func result(_ id: JobID) -> String { base(id.model) + "result:" + id.rawValue }
    /// Image `index` (0-based) of a finished job that made several: image 0 at `result(id)`,
    /// image k > 0 at that key followed by `:<k>` (no job id holds a `:`).
    public func result(_ id: JobID, index: Int) -> String { index == 0 ? result(id) : result(id) + ":\(index)" }
    /// A running job's latest preview image (PNG or JPEG, at most 64 KiB), under a short TTL.
    public func preview(_ id: JobID) -> String { base(id.model) + "preview:" + id.rawValue }
    /// Pub/sub channel on which a cancel of a running job reaches its worker (message: the job id).
    public func cancellations(_ model: String) -> String { base(model) + "cancel" }
    /// ZSET of the model's webhook deliveries: job id → due time (ms); see WebhookOutbox.
    public func webhooks(_ model: String) -> String { base(model) + "webhooks" }
    /// LIST holding at most one token: deliveries were queued (idle deliverers BLPOP it).
    public func webhookWake(_ model: String) -> String { base(model) + "webhooks:wake" }
    /// Prefix of the model's per-minute counters (not a key by itself): the HASH of one minute
    /// is this text followed by the minute, ms since the epoch / 60 000 (see `statsMinute`).
    public func statsPrefix(_ model: String) -> String { base(model) + "stats:" }
    /// HASH of the jobs of `model` that ended in one minute (`minute` = ms since the epoch /
    /// 60 000): field `<outcome>|w<wait bucket>|r<run bucket>` → count; see `MinuteStats`.
    public func statsMinute(_ model: String, minute: Int64) -> String { statsPrefix(model) + String(minute) }
    /// LIST of the ids of the model's latest completions, newest first (50 to 100 of them).
    public func recent(_ model: String) -> String { base(model) + "recent" }
    /// Idempotency key → job id.
    public func idempotency(_ model: String, key: String) -> String { base(model) + "idem:" + key }
    /// A user's rate-limit window (its own hash tag: one user's limit spans models).
    public func rateLimit(user: String) -> String { "\(prefix):ratelimit:{\(user)}" }

    /// Live workers: ZSET worker id → last heartbeat (ms).
    public var workers: String { "\(prefix):workers" }
    /// One live worker's description (JSON), under a TTL.
    public func worker(_ id: String) -> String { "\(prefix):worker:\(id)" }

    /// Pub/sub channel of every event of a model.
    public func events(_ model: String) -> String { base(model) + "events" }
    /// Pub/sub channel of one job's events.
    public func events(_ id: JobID) -> String { events(id.model) + ":" + id.rawValue }
    /// Pattern matching every model's event channel.
    public var allEventsPattern: String { "\(prefix):{*}:events" }

    /// The KEYS every model script takes, in protocol order.
    func scriptKeys(_ model: String) -> [String] {
        [pending(model), active(model), dead(model), meta(model), wake(model), sequence(model), fence(model),
         jobPrefix(model)]
    }

    /// The optional KEYS[9..10] of the scripts that end jobs (claimJob, completeJob, failJob,
    /// recoverExpired): where the dashboard's counters and latest completions go.
    func statsKeys(_ model: String) -> [String] { [statsPrefix(model), recent(model)] }
}
