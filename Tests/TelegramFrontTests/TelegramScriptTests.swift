import ImageQueue
import TelegramFront
import RedisClient
import Testing
import TestSupport

/// The Telegram front's Lua scripts, called directly against Redis, with their error codes.
@Suite(.runsClients) struct TelegramScriptTests {
    let redis: RedisConnection
    let keys: TelegramKeys

    init() throws {
        redis = runInTest(RedisConnection(configuration: try RedisConfiguration(url: TestEnvironment.redisURL())))
        keys = TelegramKeys(prefix: TestEnvironment.uniquePrefix("tg"), bot: "123456")
    }

    func call(_ name: String, keys: [String], _ arguments: [String]) async -> RESPValue {
        let script = RedisScript(name: name, source: TelegramScripts.sources[name]!)
        return (try? await redis.pipeline([.script(script, keys: keys, arguments: arguments)]).first) ?? .error("CONNECTION failed")
    }

    func code(_ value: RESPValue) -> String? {
        if case .error(let text) = value { return text.split(separator: " ").first.map(String.init) }
        return nil
    }

    @Test func everyScriptIsEmbeddedWithItsHeaderAndRunsOnAFullRedis() {
        let names = ["renewLease", "releaseLease", "commitUpdate", "updateDelivery"]
        #expect(Set(TelegramScripts.sources.keys) == Set(names))
        for (name, source) in TelegramScripts.sources {
            let lines = source.split(separator: "\n", maxSplits: 1).map(String.init)
            // They only drain or hand over work: a full Redis must still run them (PROTOCOL.md §16).
            #expect(lines.first == "#!lua flags=allow-oom", "\(name)")
            #expect(lines.last?.hasPrefix("--[[\n  \(name):") == true, "\(name) opens with its header")
        }
    }

    func commit(_ owner: String, offset: String, job: String = "", record: String = "") async -> RESPValue {
        await call("commitUpdate", keys: [keys.lease, keys.offset, keys.deliveries], [owner, offset, job, record])
    }

    @Test func theFrontsScriptsRunWhileRedisIsAtMaxmemory() async throws {
        // A Redis of its own, filled the quick way: maxmemory below what it uses, noeviction.
        let server = try await RedisServer.launch(extraArguments: ["--maxmemory-policy", "noeviction"])
        let full = runInTest(RedisConnection(configuration: try RedisConfiguration(url: server.url)))
        func call(_ name: String, keys: [String], _ arguments: [String]) async throws -> RESPValue {
            let script = RedisScript(name: name, source: TelegramScripts.sources[name]!)
            return try await full.pipeline([.script(script, keys: keys, arguments: arguments)])[0]
        }
        _ = try await full.send("SET", keys.lease, "a", "PX", "60000")
        _ = try await full.send("CONFIG", "SET", "maxmemory", "1")
        #expect(code(try await full.pipeline([RedisCommand("SET", keys.offset, "1")])[0]) == "OOM", "Redis refuses writes now")

        // A refused command is answered and committed (the offset moves on, once), an
        // accepted one's delivery is recorded and rewritten, the lease renewed and handed over.
        #expect(try await call("commitUpdate", keys: [keys.lease, keys.offset, keys.deliveries], ["a", "8", "", ""]).int == 0)
        #expect(try await full.send("GET", keys.offset).string == "8")
        #expect(try await call("commitUpdate", keys: [keys.lease, keys.offset, keys.deliveries],
                               ["a", "9", "flux-1", #"{"job":"flux-1"}"#]).int == 1)
        #expect(try await call("updateDelivery", keys: [keys.lease, keys.deliveries], ["a", "flux-1", #"{"job":"flux-1","m":2}"#]).int == 1)
        #expect(try await full.send("HGET", keys.deliveries, "flux-1").string == #"{"job":"flux-1","m":2}"#)
        #expect(try await call("renewLease", keys: [keys.lease], ["a", "120000"]).int == 1)
        #expect(try await call("releaseLease", keys: [keys.lease, keys.handover], ["a", "5000"]).int == 1)
        #expect(try await full.send("LLEN", keys.handover).int == 1)
        _ = server
    }

    @Test func renewLeaseExtendsOnlyTheOwnersLease() async throws {
        #expect(code(await call("renewLease", keys: [keys.lease], ["", "1000"])) == "BAD_REQUEST")
        #expect(code(await call("renewLease", keys: [keys.lease], ["a", "0"])) == "BAD_REQUEST")
        #expect(code(await call("renewLease", keys: [keys.lease], ["a", "1.5"])) == "BAD_REQUEST")
        #expect(await call("renewLease", keys: [keys.lease], ["a", "5000"]).int == 0, "nobody holds it")
        try await redis.send("SET", keys.lease, "a", "PX", "30000")
        #expect(await call("renewLease", keys: [keys.lease], ["b", "120000"]).int == 0)
        #expect(try await redis.send("PTTL", keys.lease).int ?? 0 <= 30_000)
        #expect(await call("renewLease", keys: [keys.lease], ["a", "120000"]).int == 1)
        #expect(try await redis.send("PTTL", keys.lease).int ?? 0 > 60_000)
    }

    @Test func releaseLeaseHandsOverOnlyFromTheOwner() async throws {
        try await redis.send("SET", keys.lease, "a", "PX", "60000")
        #expect(code(await call("releaseLease", keys: [keys.lease, keys.handover], ["a", "x"])) == "BAD_REQUEST")
        #expect(await call("releaseLease", keys: [keys.lease, keys.handover], ["b", "5000"]).int == 0)
        #expect(try await redis.send("GET", keys.lease).string == "a")
        #expect(try await redis.send("LLEN", keys.handover).int == 0)
        #expect(await call("releaseLease", keys: [keys.lease, keys.handover], ["a", "5000"]).int == 1)
        #expect(try await redis.send("EXISTS", keys.lease).int == 0)
        #expect(try await redis.send("LLEN", keys.handover).int == 1, "one token for one standby")
        #expect(try await redis.send("PTTL", keys.handover).int ?? 0 > 0, "an unclaimed token expires")
        // A second release (after another takeover) still leaves a single token.
        try await redis.send("SET", keys.lease, "c", "PX", "60000")
        #expect(await call("releaseLease", keys: [keys.lease, keys.handover], ["c", "5000"]).int == 1)
        #expect(try await redis.send("LLEN", keys.handover).int == 1)
    }

    @Test func commitUpdateIsFencedByTheLease() async throws {
        #expect(code(await commit("a", offset: "5")) == "NOT_LEADER", "nobody holds the lease")
        try await redis.send("SET", keys.lease, "a", "PX", "60000")
        #expect(code(await commit("b", offset: "5", job: "flux-1", record: "{}")) == "NOT_LEADER")
        #expect(try await redis.send("EXISTS", keys.offset, keys.deliveries).int == 0, "a refused commit writes nothing")
        #expect(code(await commit("a", offset: "x")) == "BAD_REQUEST")
        #expect(code(await commit("a", offset: "5.5")) == "BAD_REQUEST")
        #expect(code(await commit("a", offset: "5", job: "flux-1")) == "BAD_REQUEST", "a job needs its record")
    }

    @Test func commitUpdateMovesTheOffsetForwardAndRecordsADeliveryOnce() async throws {
        try await redis.send("SET", keys.lease, "a", "PX", "60000")
        #expect(await commit("a", offset: "11").int == 0)
        #expect(try await redis.send("GET", keys.offset).string == "11")
        #expect(await commit("a", offset: "12", job: "flux-1", record: #"{"n":1}"#).int == 1)
        #expect(await commit("a", offset: "12", job: "flux-1", record: #"{"n":2}"#).int == 0, "the same job is recorded once")
        #expect(try await redis.send("HGET", keys.deliveries, "flux-1").string == #"{"n":1}"#)
        #expect(await commit("a", offset: "7").int == 0)
        #expect(try await redis.send("GET", keys.offset).string == "12", "the offset never goes back")
    }

    @Test func updateDeliveryRewritesOnlyPendingRecordsOfTheLeaseHolder() async throws {
        try await redis.send("SET", keys.lease, "a", "PX", "60000")
        #expect(await call("updateDelivery", keys: [keys.lease, keys.deliveries], ["a", "flux-1", "{}"]).int == 0,
                "a finished delivery is not brought back")
        #expect(try await redis.send("HEXISTS", keys.deliveries, "flux-1").int == 0)
        try await redis.send("HSET", keys.deliveries, "flux-1", #"{"n":1}"#)
        #expect(code(await call("updateDelivery", keys: [keys.lease, keys.deliveries], ["b", "flux-1", "{}"])) == "NOT_LEADER")
        #expect(await call("updateDelivery", keys: [keys.lease, keys.deliveries], ["a", "flux-1", #"{"n":2}"#]).int == 1)
        #expect(try await redis.send("HGET", keys.deliveries, "flux-1").string == #"{"n":2}"#)
    }

    @Test func keysShareTheBotsHashTag() {
        for key in [keys.lease, keys.handover, keys.offset, keys.deliveries] {
            #expect(key.contains(":telegram:{123456}:"))
        }
    }
}
