extension RedisConnection {
    /// Checks that the server is what the URL says, before a process relies on it: the
    /// credentials are accepted, a single-node URL does not point at a Redis Cluster node
    /// (whose other slots live on other nodes: commands on them would answer MOVED), and a
    /// `redis+cluster://` URL points at a cluster. A user without the right to `CLUSTER SLOTS`
    /// passes the cluster check.
    /// - Throws: `RedisError`: `.authentication`, `.misconfigured` (with what to use
    ///   instead), or a connection error.
    public func verifyEndpoint() async throws {
        if let cluster {
            _ = try await cluster.masters()
            return
        }
        let reply = try await pipeline([RedisCommand("CLUSTER", "SLOTS")])[0]
        // A standalone server answers an error ("cluster support disabled"); a cluster node
        // an array, empty while no slot is assigned to it.
        guard case .array = reply else { return }
        let node = RedisClusterRouter.address(of: endpoint)
        throw RedisError(.misconfigured, "\(endpointDescription) is a Redis Cluster node: use redis+cluster://[user:password@]\(node) "
                                         + "(more nodes after commas), so that each command reaches the node of its slot")
    }
}
