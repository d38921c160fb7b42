import Logging
import ServiceLifecycle

/// What callers use to talk to Redis, whichever shape the URL picked (`makeRedisClient`): one
/// server (`RedisConnection`, `redis://…`) or a Redis Cluster (`RedisClusterClient`,
/// `redis+cluster://…`, routed by hash slot). Script calls are commands too
/// (`RedisCommand.script`): both shapes load them on first use and again after NOSCRIPT.
///
/// Each is a `Service`: its threads live while `run()` runs, and commands sent before that
/// wait for it (`withRunning` for a one-shot call).
public protocol RedisClientProtocol: AnyObject, ClosableService {
    /// The endpoint (a cluster's seeds), with the password masked.
    var endpointDescription: String { get }

    /// Sends one command and returns its reply; nil `timeout`: the configuration's.
    /// - Throws: `RedisError`: `.server` for an error reply, or a connection error.
    @discardableResult
    func send(_ command: RedisCommand, timeout: Duration?) async throws -> RESPValue

    /// Sends several commands in one round trip (one per node in a cluster); error replies
    /// come back as `.error` values in their place, not as a thrown error.
    /// - Throws: `RedisError` for connection failures only.
    func pipeline(_ commands: [RedisCommand], timeout: Duration?) async throws -> [RESPValue]

    /// Every key matching the glob `pattern`, read with SCAN (on every master of a cluster):
    /// unlike KEYS it never blocks Redis for long. Keys written meanwhile may be missed.
    /// - Throws: `RedisError`.
    func scanKeys(matching pattern: String, count: Int) async throws -> [[UInt8]]

    /// Checks that the server is what the URL says, before a process relies on it: the
    /// credentials are accepted, a single-node URL does not point at a Redis Cluster node
    /// (whose other slots live on other nodes: commands on them would answer MOVED), and a
    /// `redis+cluster://` URL points at a cluster.
    /// - Throws: `RedisError`: `.authentication`, `.misconfigured` (with what to use
    ///   instead), or a connection error.
    func verifyEndpoint() async throws

    /// Runs the client's threads until the task is cancelled or `close()` is called; call it
    /// once. Graceful shutdown does not end it: the services that use it shut down first.
    /// - Throws: `RedisError` `.closed` when it already ran.
    func run() async throws

    /// Ends `run()`; queued and later commands fail with `.closed`.
    func close()
}

extension RedisClientProtocol {
    /// Sends one command with the configuration's timeout.
    /// - Throws: `RedisError`.
    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RESPValue {
        try await send(command, timeout: nil)
    }

    /// Sends one command built from its words.
    /// - Throws: `RedisError`.
    @discardableResult
    public func send(_ words: any RedisArgument...) async throws -> RESPValue {
        try await send(RedisCommand(arguments: words.map(\.redisBytes)), timeout: nil)
    }

    /// Sends several commands with the configuration's timeout.
    /// - Throws: `RedisError` for connection failures only.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        try await pipeline(commands, timeout: nil)
    }

    /// Every key matching `pattern`, 1000 per SCAN call.
    /// - Throws: `RedisError`.
    public func scanKeys(matching pattern: String) async throws -> [[UInt8]] {
        try await scanKeys(matching: pattern, count: 1000)
    }
}

/// The client of the shape `configuration` names: a `RedisClusterClient` for a
/// `redis+cluster://` URL, else a single-node `RedisConnection`. It connects once `run()` runs.
public func makeRedisClient(configuration: RedisConfiguration,
                            logger: Logger = Logger(label: "imagequeue.redis")) -> any RedisClientProtocol {
    if configuration.isCluster { return RedisClusterClient(configuration: configuration, logger: logger) }
    return RedisConnection(configuration: configuration, logger: logger)
}
