import RedisClient
import Testing
import TestSupport

/// Resharding under a live client: a slot migrated half-way answers ASK for the keys already
/// moved, and once the move is finished MOVED; commands and scripts keep working, ASK leaves
/// the client's slot map alone, MOVED updates it and a refresh picks up other moved slots.
@Suite("cluster resharding", .runsClients)
struct MigrationTests {
    @Test("ASK during a migration, MOVED after it: commands and scripts succeed, the map follows")
    func askThenMoved() async throws {
        let cluster = try await LocalCluster.shared()
        let redis = runInTest(RedisClusterClient(configuration: try RedisConfiguration(url: cluster.url)))
        defer { redis.close() }
        // A slot no other test uses (they use the models flux and sdxl, and random tags).
        var tag = TestEnvironment.uniquePrefix("mig")
        let busy = Set(["flux", "sdxl"].map { RedisClusterSlot.slot(of: $0) })
        while busy.contains(RedisClusterSlot.slot(of: tag)) { tag = TestEnvironment.uniquePrefix("mig") }
        let slot = RedisClusterSlot.slot(of: tag)
        let (moved, stays, fresh) = ("{\(tag)}:moved", "{\(tag)}:stays", "{\(tag)}:fresh")
        let read = RedisScript(name: "read", source: "return redis.call('GET', KEYS[1])")

        try await redis.send("SET", moved, "one")
        try await redis.send("SET", stays, "two")
        let source = try #require(redis.clusterOwner(ofSlot: slot))
        let masters = try await redis.clusterMasters()
        let target = try #require(masters.first { $0 != source })
        // Another slot, empty, owned by the same master: moved silently, found by the refresh.
        let quiet = try #require((0..<RedisClusterSlot.count).first { $0 != slot && redis.clusterOwner(ofSlot: $0) == source })

        let sourceNode = try node(source)
        let targetNode = try node(target)
        let allNodes = try masters.map(node)
        defer { for node in [sourceNode, targetNode] + allNodes { node.close() } }
        let sourceID = try #require(try await sourceNode.send("CLUSTER", "MYID").string)
        let targetID = try #require(try await targetNode.send("CLUSTER", "MYID").string)

        // Half-way: `moved` is on the target, `stays` still on the source.
        try await targetNode.send("CLUSTER", "SETSLOT", slot, "IMPORTING", sourceID)
        try await sourceNode.send("CLUSTER", "SETSLOT", slot, "MIGRATING", targetID)
        let (targetHost, targetPort) = split(target)
        try await sourceNode.send("MIGRATE", targetHost, targetPort, "", 0, 5000, "KEYS", moved)
        await #expect { try await sourceNode.send("GET", moved) } throws: { ($0 as? RedisError)?.serverCode == "ASK" }

        #expect(try await redis.send("GET", moved).string == "one")
        #expect(try await redis.send("GET", stays).string == "two")
        #expect(try await redis.send(.script(read, keys: [moved], arguments: [])).string == "one")
        #expect(try await redis.pipeline([RedisCommand("GET", stays), RedisCommand("GET", moved)]).map(\.string) == ["two", "one"])
        try await redis.send("SET", fresh, "three")  // a new key in a migrating slot goes to the target
        #expect(try await targetNode.pipeline([RedisCommand("ASKING"), RedisCommand("GET", fresh)]) == [.status("OK"), .bulk("three".redisBytes)])
        #expect(try await redis.send("GET", fresh).string == "three")
        #expect(redis.clusterOwner(ofSlot: slot) == source, "ASK must not change the map")

        // Finished: every key on the target, every node told.
        try await sourceNode.send("MIGRATE", targetHost, targetPort, "", 0, 5000, "KEYS", stays)
        for node in allNodes { try await node.send("CLUSTER", "SETSLOT", slot, "NODE", targetID) }
        for node in allNodes { try await node.send("CLUSTER", "SETSLOT", quiet, "NODE", targetID) }
        await #expect { try await sourceNode.send("GET", stays) } throws: { ($0 as? RedisError)?.serverCode == "MOVED" }

        #expect(try await redis.send("GET", stays).string == "two")
        #expect(redis.clusterOwner(ofSlot: slot) == target, "MOVED updates the map")
        #expect(try await redis.send(.script(read, keys: [moved], arguments: [])).string == "one")
        #expect(try await redis.send("GET", fresh).string == "three")
        // The refresh MOVED scheduled reads CLUSTER SLOTS: the quiet slot is known moved too.
        try await waitUntil("the refreshed map shows slot \(quiet) on \(target)") {
            redis.clusterOwner(ofSlot: quiet) == target
        }
        #expect(redis.clusterOwner(ofSlot: quiet) == target)
        try await redis.send("DEL", moved, stays, fresh).int.map { #expect($0 == 3) }
    }

    private func node(_ address: String) throws -> RedisConnection {
        runInTest(RedisConnection(configuration: try RedisConfiguration(url: "redis://\(address)")))
    }

    private func split(_ address: String) -> (String, Int) {
        let colon = address.lastIndex(of: ":")!
        return (String(address[..<colon]), Int(address[address.index(after: colon)...])!)
    }
}
