import Logging

/// A Redis Cluster client (`redis+cluster://` URLs): every command goes to the master of its
/// keys' hash slot through `RedisClusterRouter`, over one single-node `RedisConnection` per
/// master; see that type for splits, redirections and failovers. Those connections and the
/// map's refreshes live while `run()` runs.
public final class RedisClusterClient: RedisClientProtocol {
    let router: RedisClusterRouter

    /// Makes a client for `configuration`'s seeds (lazily: the first command reads the slot
    /// map, with connections of its own; commands wait for `run()`).
    public init(configuration: RedisConfiguration, logger: Logger = Logger(label: "imagequeue.redis")) {
        precondition(configuration.isCluster, "RedisClusterClient needs a redis+cluster:// configuration")
        router = RedisClusterRouter(configuration: configuration, logger: logger)
    }

    deinit { router.close() }

    public var endpointDescription: String { router.description }

    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration?) async throws -> RESPValue {
        try await pipeline([command], timeout: timeout)[0].orThrow()
    }

    public func pipeline(_ commands: [RedisCommand], timeout: Duration?) async throws -> [RESPValue] {
        if commands.isEmpty { return [] }
        return try await router.submit(commands, timeout: timeout ?? router.configuration.commandTimeout)
    }

    public func scanKeys(matching pattern: String, count: Int) async throws -> [[UInt8]] {
        try await router.scanKeys(matching: pattern, count: count)
    }

    /// Reads the slot map: the seeds must answer `CLUSTER SLOTS` as cluster nodes.
    public func verifyEndpoint() async throws {
        _ = try await router.masters()
    }

    public func run() async throws {
        guard router.claimRun() else { throw RedisError(.closed, "the cluster client has already run (run() is called once)") }
        await withTaskCancellationHandler {
            await router.run()
        } onCancel: {
            router.close()
        }
        router.close()
    }

    public func close() { router.close() }

    /// The master ("host:port") the slot map names for `slot`, nil when unknown. For tests
    /// and diagnostics.
    package func clusterOwner(ofSlot slot: Int) -> String? { router.owner(ofSlot: slot) }

    /// The masters ("host:port") of the slot map, read first if needed.
    package func clusterMasters() async throws -> [String] { try await router.masters() }
}
