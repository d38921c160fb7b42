import RedisClient
import Testing
import TestSupport

/// A master that dies: its replica is promoted, the client finds the new master through
/// another node and the subscriber moves to another node. A private cluster of three
/// masters with one replica each and a one-second node timeout, since this test kills a node.
@Suite("cluster failover", .runsClients)
struct FailoverTests {
    @Test("after a master is SIGKILLed, commands on its slots reach the promoted replica and pub/sub continues")
    func masterKilled() async throws {
        let cluster = try await LocalCluster.start(replicasPerMaster: 1, nodeTimeoutMilliseconds: 1000)
        defer { Task { await cluster.stop() } }
        let url = "redis+cluster://" + cluster.ports.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        var configuration = try RedisConfiguration(url: url)
        configuration.reconnectDeadline = .seconds(2)
        let redis = runInTest(RedisClusterClient(configuration: configuration))
        defer { redis.close() }

        // A key on the master the subscriber connects to (the first node that is a master).
        let masters = try await redis.clusterMasters()
        let victim = try #require(cluster.ports.map { "127.0.0.1:\($0)" }.first { masters.contains($0) })
        var tag = TestEnvironment.uniquePrefix("fo")
        while redis.clusterOwner(ofSlot: RedisClusterSlot.slot(of: tag)) != victim { tag = TestEnvironment.uniquePrefix("fo") }
        let key = "{\(tag)}:value"
        // WAIT goes with the SET (a keyless command follows the request's keyed one): the
        // replica has the value before the master dies.
        let written = try await redis.pipeline([RedisCommand("SET", key, "survives"), RedisCommand("WAIT", 1, 5000)])
        try #require(written == [.status("OK"), .integer(1)], "\(written)")

        var subscriberConfiguration = try RedisConfiguration(url: "redis+cluster://\(victim)," + url.dropFirst("redis+cluster://".count))
        subscriberConfiguration.reconnectDeadline = .seconds(30)
        let subscriber = runInTest(RedisSubscriber(configuration: subscriberConfiguration))
        defer { subscriber.close() }
        let channel = "\(tag):events"
        var events = try await subscriber.subscribe([channel]).makeAsyncIterator()

        try await cluster.killNode(port: Int(victim.split(separator: ":")[1])!)

        // Until a replica is promoted the command fails (the master is unreachable, or the
        // cluster reports CLUSTERDOWN); a worker would retry the same way.
        var value: String?
        var lastError = ""
        try await waitUntil("a GET on the dead master's slot succeeds (last error: \(lastError))", timeout: 60) {
            do {
                value = try await redis.send("GET", key).string
                return true
            } catch {
                lastError = "\(error)"
                return false
            }
        }
        #expect(value == "survives")
        let owner = redis.clusterOwner(ofSlot: RedisClusterSlot.slot(of: key))
        #expect(owner != nil && owner != victim, "the map still names \(owner ?? "nothing")")
        #expect(try await redis.send("SET", key, "after failover") == .status("OK"))

        // The subscriber lost its node: it renews its subscription on another one.
        #expect(await events.next() == .resubscribed)
        try await redis.send("PUBLISH", channel, "still heard")
        #expect(await events.next() == .message(channel: channel, payload: "still heard".redisBytes))
    }
}
