/// Pub/sub in a cluster: `RedisSubscriber` keeps one connection to one node (a cluster
/// broadcasts PUBLISH to every node) and finds the others here when that node goes away.
extension RedisClusterRouter {
    /// The nodes a cluster subscriber may use, the one it is connected to first, then the
    /// other masters of `CLUSTER SLOTS`, then the seeds; nil when the node does not answer.
    /// Runs on the subscriber's thread, before it subscribes.
    static func pubSubNodes(asking socket: RedisSocket, current: RedisEndpoint,
                            configuration: RedisConfiguration) -> [RedisEndpoint]? {
        guard case .tcp(let currentHost, _) = current.address else { return nil }
        do {
            try socket.append(["CLUSTER", "SLOTS"].map(\.redisBytes))
            let deadline = ContinuousClock.now + configuration.commandTimeout
            try socket.flush(deadline: deadline)
            let ranges = try RedisClusterSlotMap.parse(try socket.readReply(deadline: deadline, interruptFD: nil), queriedHost: currentHost)
            var nodes = [current]
            var seen: Set<String> = [address(of: current)]
            for endpoint in ranges.map({ endpoint(configuration, $0.1) }) + configuration.clusterSeeds
            where seen.insert(address(of: endpoint)).inserted {
                nodes.append(endpoint)
            }
            return nodes
        } catch {
            return nil
        }
    }

    /// The configuration's endpoint (credentials) at `node` ("host:port").
    private static func endpoint(_ configuration: RedisConfiguration, _ node: String) -> RedisEndpoint {
        var endpoint = configuration.endpoint
        let colon = node.lastIndex(of: ":")!
        endpoint.address = .tcp(host: String(node[..<colon]), port: Int(node[node.index(after: colon)...]) ?? 6379)
        return endpoint
    }
}
