import RedisClient
import Testing
import TestSupport

/// Key-to-slot mapping: published vectors, and agreement with a real cluster's CLUSTER KEYSLOT.
@Suite("cluster slots", .runsClients)
struct SlotTests {
    @Test("CRC16/XMODEM vectors and the slots the Redis Cluster specification gives")
    func knownSlots() {
        // CRC16/XMODEM("123456789") = 0x31C3; its slot is that modulo 16384.
        #expect(RedisClusterSlot.slot(of: "123456789") == 0x31C3 % 16384)
        #expect(RedisClusterSlot.slot(of: "foo") == 12182)
        #expect(RedisClusterSlot.slot(of: "bar") == 5061)
        #expect(RedisClusterSlot.slot(of: "") == 0)
    }

    @Test("hash tags: the first {...} with something inside decides the slot")
    func hashTags() {
        let slot = RedisClusterSlot.slot(of:) as (String) -> Int
        #expect(slot("{user1000}.following") == slot("user1000"))
        #expect(slot("{user1000}.followers") == slot("user1000"))
        #expect(slot("foo{}{bar}") == slot("foo{}{bar}"))
        #expect(slot("foo{}{bar}") != slot("bar"))      // an empty tag: the whole key is hashed
        #expect(slot("foo{{bar}}zap") == slot("{bar"))   // from the first { to the first } after it
        #expect(slot("foo{bar}{zap}") == slot("bar"))    // only the first tag counts
        #expect(slot("iq:{flux}:pending") == slot("iq:{flux}:active"))
        #expect(slot("no{tag") == slot("no{tag"))
    }

    @Test("our slot of every kind of key ImageQueue writes matches the server's CLUSTER KEYSLOT")
    func matchesServer() async throws {
        let cluster = try await LocalCluster.shared()
        let node = runInTest(RedisConnection(configuration: try RedisConfiguration(url: cluster.nodeURL(cluster.ports[0]))))
        defer { node.close() }
        var keys: [[UInt8]] = ["iq:{flux}:pending", "iq:{sdxl}:job:01J0000000", "iq:ratelimit:{alice}",
                               "iq:telegram:{123456}:lease", "iq:workers", "iq:worker:host:42", "", "{}", "{a}{b}",
                               "x{}y", "é{ü}", "foo{{bar}}zap"].map(\.redisBytes)
        var generator = SystemRandomNumberGenerator()
        for length in 0..<40 {
            keys.append((0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
        for key in keys {
            let server = try await node.send(RedisCommand(arguments: ["CLUSTER".redisBytes, "KEYSLOT".redisBytes, key])).int
            #expect(server.map(Int.init) == RedisClusterSlot.slot(of: key), "key bytes \(key)")
        }
    }
}
