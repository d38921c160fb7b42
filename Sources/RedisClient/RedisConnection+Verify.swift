extension RedisConnection {
    /// Checks that the credentials are accepted and that the server is no Redis Cluster node
    /// (whose other slots live on other nodes: commands on them would answer MOVED). A user
    /// without the right to `CLUSTER SLOTS` passes.
    /// - Throws: `RedisError`: `.authentication`, `.misconfigured` (with what to use
    ///   instead), or a connection error.
    public func verifyEndpoint() async throws {
        let reply = try await pipeline([RedisCommand("CLUSTER", "SLOTS")])[0]
        // A standalone server answers an error ("cluster support disabled"); a cluster node
        // an array, empty while no slot is assigned to it.
        guard case .array = reply else { return }
        let node = RedisClusterRouter.address(of: endpoint)
        throw RedisError(.misconfigured, "\(endpointDescription) is a Redis Cluster node: use redis+cluster://[user:password@]\(node) "
                                         + "(more nodes after commas), so that each command reaches the node of its slot")
    }
}
