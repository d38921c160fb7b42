/// A live worker as it registers itself in Redis (`<prefix>:worker:<id>`, refreshed every
/// few seconds and expiring when the worker stops).
public struct WorkerInfo: Codable, Sendable, Equatable {
    /// The worker's id (`<host>:<pid>` unless named).
    public var id: String
    /// Its host name.
    public var host: String
    /// Its process id.
    public var pid: Int
    /// The models it serves.
    public var models: [String]
    /// When it started, ms since the epoch.
    public var startedAt: Int64
    /// Its latest registration, ms since the epoch.
    public var heartbeatAt: Int64
    /// The jobs it runs now.
    public var currentJobs: [String]
    /// With Sentinel: `host:port` of the master the worker uses now.
    public var redisMaster: String?
    /// With Sentinel: when the worker last saw the master move, ms since the epoch.
    public var redisFailoverAt: Int64?

    /// Creates an entry.
    public init(id: String, host: String, pid: Int, models: [String], startedAt: Int64, heartbeatAt: Int64, currentJobs: [String]) {
        self.id = id
        self.host = host
        self.pid = pid
        self.models = models
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
        self.currentJobs = currentJobs
    }

    enum CodingKeys: String, CodingKey {
        case id, host, pid, models, startedAt = "started_at", heartbeatAt = "heartbeat_at", currentJobs = "current_jobs"
        case redisMaster = "redis_master", redisFailoverAt = "redis_failover_at"
    }
}
