import DedicatedThreads

/// How a connection reaches Redis and how patient it is.
public struct RedisConfiguration: Sendable {
    /// Where Redis is, with credentials and database.
    public var endpoint: RedisEndpoint
    /// Time allowed for one TCP/unix connect.
    public var connectTimeout: Duration = .seconds(2)
    /// Time allowed for a command's reply (blocking commands pass their own).
    public var commandTimeout: Duration = .seconds(10)
    /// How long a queued command waits for Redis to come back before it fails.
    public var reconnectDeadline: Duration = .seconds(10)
    /// First reconnect delay; doubles per failed attempt up to `maxBackoff`, with full jitter.
    public var initialBackoff: Duration = .milliseconds(50)
    /// Largest reconnect delay. Kept short so a connection is back within a quarter of a
    /// second of Redis answering again (a restart, a failover, the end of a freeze): workers
    /// claim again within a second of an outage, before the leases of the jobs they still
    /// run can expire. Attempts against a server that is down cost it nothing.
    public var maxBackoff: Duration = .milliseconds(250)
    /// Name shown by `CLIENT LIST`, or nil.
    public var clientName: String?
    /// Seed nodes of a Redis Cluster (`redis+cluster://` URLs); empty for one server.
    /// When set, `makeRedisClient` makes a `RedisClusterClient`, which routes commands by their keys' hash slots.
    public var clusterSeeds: [RedisEndpoint] = []
    /// Replicas that must acknowledge the writes of a command marked `awaitingReplicas()`
    /// (`WAIT`), 0 for none: Redis replicates asynchronously, and a failover can lose writes
    /// the old master acknowledged.
    public var waitReplicas = 0
    /// How long a `WAIT` waits for those acknowledgements.
    public var waitTimeout: Duration = .seconds(1)
    /// The sentinels that name the master (`redis+sentinel://` URLs); nil otherwise. Then
    /// `endpoint` holds the master's credentials, database and TLS, not its address.
    public var sentinel: RedisSentinel?

    /// Creates a configuration for `endpoint` with default timeouts.
    public init(endpoint: RedisEndpoint, clientName: String? = nil) {
        self.endpoint = endpoint
        self.clientName = clientName
    }

    /// Creates a configuration from a Redis URL.
    /// - Throws: `RedisError` of kind `.invalidURL`.
    public init(url: String, clientName: String? = nil) throws(RedisError) {
        if let (master, sentinel) = try Self.parseSentinel(url: url) {
            self.init(endpoint: master, clientName: clientName)
            self.sentinel = sentinel
            return
        }
        if let seeds = try Self.parseClusterSeeds(url: url) {
            self.init(endpoint: seeds[0], clientName: clientName)
            clusterSeeds = seeds
            return
        }
        self.init(endpoint: try RedisEndpoint(url: url), clientName: clientName)
    }

    /// Sets the TLS settings of every endpoint (the server, each cluster seed or each
    /// sentinel; the cluster nodes and masters found later take the same).
    public mutating func useTLS(_ tls: RedisTLS) {
        endpoint.tls = tls
        for index in clusterSeeds.indices { clusterSeeds[index].tls = tls }
        if sentinel != nil {
            for index in sentinel!.sentinels.indices { sentinel!.sentinels[index].tls = tls }
        }
    }

    /// The delay before reconnect attempt `attempt` (0-based): capped exponential, full jitter.
    func backoff(attempt: Int) -> Duration {
        let capped = min(maxBackoff, initialBackoff * (1 << min(attempt, 20)))
        let ms = max(1, capped.wholeMilliseconds)
        return .milliseconds(Int64.random(in: ms / 2...ms))
    }
}
