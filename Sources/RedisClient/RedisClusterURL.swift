extension RedisConfiguration {
    /// Whether commands go to a Redis Cluster (seed nodes given).
    public var isCluster: Bool { !clusterSeeds.isEmpty }

    /// Where this configuration points, with the password masked: safe for logs.
    public var endpointDescription: String {
        if let sentinel {
            let hosts = sentinel.sentinels.map { node -> String in
                guard case .tcp(let host, let port) = node.address else { return "?" }
                return (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
            }
            let credentials = endpoint.password == nil ? (endpoint.user.map { "\($0)@" } ?? "") : "\(endpoint.user ?? ""):***@"
            return "\(endpoint.tls == nil ? "redis" : "rediss")+sentinel://\(credentials)\(hosts.joined(separator: ","))/\(sentinel.masterName)"
                + (endpoint.database == 0 ? "" : "/\(endpoint.database)")
        }
        guard isCluster else { return endpoint.description }
        let credentials: String
        switch (endpoint.user, endpoint.password) {
        case (nil, nil): credentials = ""
        case (let u?, nil): credentials = "\(u)@"
        case (let u, _?): credentials = "\(u ?? ""):***@"
        }
        let hosts = clusterSeeds.map { seed -> String in
            guard case .tcp(let host, let port) = seed.address else { return "?" }
            return (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        }
        return "\(endpoint.tls == nil ? "redis" : "rediss")+cluster://\(credentials)\(hosts.joined(separator: ","))"
    }

    /// The seed nodes of a `redis+cluster://[user:password@]host1:port1,host2:port2[/]` URL
    /// (`rediss+cluster://` over TLS),
    /// or nil for any other scheme. The credentials apply to every node; a cluster has
    /// database 0 only.
    /// - Throws: `RedisError` `.invalidURL` naming what is wrong (never the password).
    static func parseClusterSeeds(url: String) throws(RedisError) -> [RedisEndpoint]? {
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        let scheme = parts.count == 2 ? parts[0].lowercased() : ""
        guard scheme == "redis+cluster" || scheme == "rediss+cluster" else { return nil }
        let nodeScheme = scheme == "rediss+cluster" ? "rediss" : "redis"
        func invalid(_ why: String) -> RedisError {
            RedisError(.invalidURL, "\(why) (expected \(scheme)://[user:password@]host1:port1[,host2:port2...])")
        }
        var rest = String(parts[1])
        var query = ""
        if let q = rest.firstIndex(of: "?") {
            query = String(rest[q...])
            rest = String(rest[..<q])
        }
        var authority = rest
        if let slash = rest.firstIndex(of: "/") {
            authority = String(rest[..<slash])
            let path = rest[rest.index(after: slash)...]
            guard path.isEmpty || path == "0" else { throw invalid("a cluster has database 0 only") }
        }
        var credentials = ""
        if let at = authority.lastIndex(of: "@") {
            credentials = String(authority[...at])
            authority = String(authority[authority.index(after: at)...])
        }
        let hosts = authority.split(separator: ",", omittingEmptySubsequences: false)
        guard !hosts.isEmpty, !hosts.contains(where: \.isEmpty) else { throw invalid("no seed node") }
        var seeds: [RedisEndpoint] = []
        for host in hosts {
            let seed: RedisEndpoint
            do {
                seed = try RedisEndpoint(url: "\(nodeScheme)://\(credentials)\(host)\(query)")
            } catch {
                // The single-node parser's message without its expected form, which is not ours.
                let why = error.message.split(separator: " (expected").first.map(String.init) ?? error.message
                throw invalid("seed \(host): \(why)")
            }
            guard seed.database == 0 else { throw invalid("a cluster has database 0 only") }
            seeds.append(seed)
        }
        return seeds
    }
}
