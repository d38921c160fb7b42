import RedisClient
import Testing
import TestSupport

/// The client in cluster mode against a real three-master cluster: routing by slot, split
/// pipelines, whole-keyspace commands, refusals, pub/sub across nodes, URLs.
@Suite("cluster client", .runsClients)
struct ClusterClientTests {
    let tag = TestEnvironment.uniquePrefix("cc")

    @Test("a pipeline over keys of every master comes back in order")
    func pipelineAcrossMasters() async throws {
        let cluster = try await LocalCluster.shared()
        let redis = runInTest(RedisClusterClient(configuration: try RedisConfiguration(url: cluster.url)))
        defer { redis.close() }
        let keys = (0..<60).map { "\(tag):key:\($0)" }
        let sets = try await redis.pipeline(keys.enumerated().map { RedisCommand("SET", $0.element, "value \($0.offset)") })
        #expect(sets.allSatisfy { $0 == .status("OK") }, "\(sets)")
        #expect(Set(keys.compactMap { redis.clusterOwner(ofSlot: RedisClusterSlot.slot(of: $0)) }).count == 3)
        let gets = try await redis.pipeline(keys.map { RedisCommand("GET", $0) } + [RedisCommand("PING")])
        #expect(gets.dropLast().map(\.string) == keys.indices.map { "value \($0)" })
        #expect(gets.last == .status("PONG"))

        // Multi-key commands Redis runs per slot are split and merged.
        let mget = try await redis.send(RedisCommand(arguments: (["MGET"] + keys + ["\(tag):missing"]).map(\.redisBytes)))
        #expect(mget.array?.dropLast().map(\.string) == keys.indices.map { "value \($0)" })
        #expect(mget.array?.last == .null)
        let exists = try await redis.send(RedisCommand(arguments: (["EXISTS"] + keys).map(\.redisBytes)))
        #expect(exists.int == Int64(keys.count))
        let found = try await redis.scanKeys(matching: "\(tag):key:*")
        #expect(Set(found.map { String(decoding: $0, as: UTF8.self) }) == Set(keys))
        let deleted = try await redis.send(RedisCommand(arguments: (["DEL"] + keys).map(\.redisBytes)))
        #expect(deleted.int == Int64(keys.count))
        #expect(try await redis.scanKeys(matching: "\(tag):key:*").isEmpty)
    }

    @Test("scripts run on their keys' master, SCRIPT LOAD reaches every master")
    func scripts() async throws {
        let cluster = try await LocalCluster.shared()
        let redis = runInTest(RedisClusterClient(configuration: try RedisConfiguration(url: cluster.url)))
        defer { redis.close() }
        let script = RedisScript(name: "incrTwo", source: "redis.call('INCR', KEYS[1]); return redis.call('INCRBY', KEYS[2], ARGV[1])")
        let models = (0..<12).map { "\(tag)-model\($0)" }
        let commands = models.map { RedisCommand.script(script, keys: ["\(tag):{\($0)}:a", "\(tag):{\($0)}:b"], arguments: [5]) }
        let replies = try await redis.pipeline(commands + commands)
        #expect(replies == Array(repeating: RESPValue.integer(5), count: 12) + Array(repeating: RESPValue.integer(10), count: 12))

        let sha = try await redis.send("SCRIPT", "LOAD", "return 'loaded everywhere'").string
        let masters = try await redis.clusterMasters()
        #expect(masters.count == 3)
        for master in masters {
            let node = runInTest(RedisConnection(configuration: try RedisConfiguration(url: "redis://\(master)")))
            defer { node.close() }
            #expect(try await node.send("SCRIPT", "EXISTS", sha ?? "").array == [.integer(1)], "on \(master)")
        }
    }

    @Test("commands over several slots, SCAN and transactions get a clear error, not a wrong node")
    func refusals() async throws {
        let cluster = try await LocalCluster.shared()
        let redis = runInTest(RedisClusterClient(configuration: try RedisConfiguration(url: cluster.url)))
        defer { redis.close() }
        let (a, b) = ("\(tag):{one}", "\(tag):{two}")
        try #require(RedisClusterSlot.slot(of: a) != RedisClusterSlot.slot(of: b))
        await #expect { try await redis.send("SUNION", a, b) } throws: { error in
            (error as? RedisError)?.serverCode == "CROSSSLOT" && "\(error)".contains("hash tag")
        }
        let script = RedisScript(name: "two", source: "return #KEYS")
        let replies = try await redis.pipeline([.script(script, keys: [a, b], arguments: []), RedisCommand("SET", a, "kept")])
        #expect(replies[0].isCrossSlot, "\(replies[0])")
        #expect(replies[1] == .status("OK"))
        await #expect { try await redis.send("SCAN", "0") } throws: { error in
            "\(error)".contains("scanKeys")
        }
        await #expect { try await redis.send("MULTI") } throws: { error in
            "\(error)".contains("transactions")
        }
    }

    @Test("a subscriber on the cluster hears what is published on any node, from Lua too")
    func pubSubAcrossNodes() async throws {
        let cluster = try await LocalCluster.shared()
        let configuration = try RedisConfiguration(url: cluster.url)
        let subscriber = runInTest(RedisSubscriber(configuration: configuration))
        defer { subscriber.close() }
        let channel = "\(tag):{\(tag)}:events"
        let stream = try await subscriber.subscribe([channel])
        var messages = stream.makeAsyncIterator()
        for port in cluster.ports {
            let node = runInTest(RedisConnection(configuration: try RedisConfiguration(url: cluster.nodeURL(port))))
            defer { node.close() }
            try await node.send("PUBLISH", channel, "from \(port)")
            let received = await messages.next()
            #expect(received == .message(channel: channel, payload: "from \(port)".redisBytes))
        }
        let redis = runInTest(RedisClusterClient(configuration: configuration))
        defer { redis.close() }
        let publish = RedisScript(name: "publish", source: "return redis.call('PUBLISH', ARGV[1], ARGV[2])")
        try await redis.send(.script(publish, keys: ["\(tag):{\(tag)}:k"], arguments: [channel, "from lua"]))
        #expect(await messages.next() == .message(channel: channel, payload: "from lua".redisBytes))
    }

    @Test("a seed that is down is skipped: commands and subscriptions use the next one")
    func deadSeed() async throws {
        let cluster = try await LocalCluster.shared()
        let dead = try RedisServer.freePort()  // nothing listens there
        let url = "redis+cluster://127.0.0.1:\(dead),127.0.0.1:\(cluster.ports[1])"
        let redis = runInTest(RedisClusterClient(configuration: try RedisConfiguration(url: url)))
        defer { redis.close() }
        let key = "\(tag):{dead-seed}"
        try await redis.send("SET", key, "reached")
        #expect(try await redis.send("GET", key).string == "reached")
        #expect(Set(try await redis.clusterMasters()) == Set(cluster.ports.map { "127.0.0.1:\($0)" }))

        let subscriber = runInTest(RedisSubscriber(configuration: try RedisConfiguration(url: url)))
        defer { subscriber.close() }
        var messages = try await subscriber.subscribe([key]).makeAsyncIterator()
        try await redis.send("PUBLISH", key, "heard")
        #expect(await messages.next() == .message(channel: key, payload: "heard".redisBytes))
    }

    @Test("redis+cluster URLs: seeds, credentials masked, bad forms named")
    func urls() throws {
        let configuration = try RedisConfiguration(url: "redis+cluster://app:s3cret@10.0.0.1:7000,10.0.0.2:7001/")
        #expect(configuration.isCluster)
        #expect(configuration.clusterSeeds.map(\.address) == [.tcp(host: "10.0.0.1", port: 7000), .tcp(host: "10.0.0.2", port: 7001)])
        #expect(configuration.clusterSeeds.allSatisfy { $0.user == "app" && $0.password == "s3cret" })
        #expect(configuration.endpointDescription == "redis+cluster://app:***@10.0.0.1:7000,10.0.0.2:7001")
        #expect(!(try RedisConfiguration(url: "redis://127.0.0.1:6379")).isCluster)
        for (url, why) in [("redis+cluster://", "no seed"), ("redis+cluster://a:1,,b:2", "no seed"),
                           ("redis+cluster://a:1/3", "database 0 only"), ("redis+cluster://p4ss@a:99999", "bad port")] {
            #expect { try RedisConfiguration(url: url) } throws: { error in
                let text = "\(error)"
                return (error as? RedisError)?.kind == .invalidURL && text.contains(why) && !text.contains("p4ss")
            }
        }
    }
}

extension RESPValue {
    var isCrossSlot: Bool {
        if case .error(let text) = self { return text.hasPrefix("CROSSSLOT") }
        return false
    }
}
