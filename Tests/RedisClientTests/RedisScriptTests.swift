import RedisClient
import Testing
import TestSupport

/// Lua scripts run by SHA, and their recovery when Redis forgot them.
@Suite(.runsClients) struct RedisScriptTests {
    static let echo = "return {KEYS[1], ARGV[1], #KEYS, #ARGV}"

    @Test func scriptRunsWithKeysAndArguments() async throws {
        let redis = try sharedConnection()
        let key = TestEnvironment.uniquePrefix("rc-script")
        let script = RedisScript(name: "echoKeyAndArgument", source: Self.echo)
        #expect(script.sha == nil)
        let reply = try await redis.send(.script(script, keys: [key], arguments: ["first", 2]))
        #expect(reply == .array([bulk(key), bulk("first"), .integer(1), .integer(2)]))
        let sha = try #require(script.sha)
        #expect(sha.count == 40)
        #expect(try await redis.send("SCRIPT", "EXISTS", sha) == .array([.integer(1)]))
    }

    @Test func scriptsAreCalledWithEvalsha() async throws {
        let server = try await privateRedisServer()
        let redis = try connection(to: server.url)
        let script = RedisScript(name: "echoKeyAndArgument", source: Self.echo)
        for index in 0..<3 {
            let reply = try await redis.send(.script(script, keys: ["k"], arguments: [index]))
            #expect(reply.array?[1] == bulk(String(index)))
        }
        let evalsha = try await infoField("cmdstat_evalsha", section: "commandstats", on: redis)
        #expect(evalsha?.hasPrefix("calls=3,") == true)
        #expect(try await infoField("cmdstat_eval", section: "commandstats", on: redis) == nil)
    }

    @Test func scriptErrorReplyCarriesItsCode() async throws {
        let redis = try sharedConnection()
        let script = RedisScript(name: "refuse", source: "return redis.error_reply('STALE_TOKEN job ' .. ARGV[1] .. ' moved on')")
        let error = await redisError { try await redis.send(.script(script, keys: [], arguments: ["j-17"])) }
        #expect(error?.kind == .server)
        #expect(error?.serverCode == "STALE_TOKEN")
        #expect(error?.serverDetail == "job j-17 moved on")
        // In a pipeline the same reply comes back in place.
        let replies = try await redis.pipeline([.script(script, keys: [], arguments: ["j-18"]), RedisCommand("PING")])
        #expect(replies == [.error("STALE_TOKEN job j-18 moved on"), .status("PONG")])
    }

    @Test func scriptThatDoesNotCompileIsAServerError() async throws {
        let redis = try sharedConnection()
        let script = RedisScript(name: "broken", source: "return {")
        let error = await redisError { try await redis.send(.script(script, keys: [], arguments: [])) }
        #expect(error?.kind == .server)
        #expect(error?.isTransient == false)
        #expect(error?.message.contains("broken") == true)
        #expect(try await redis.send("PING") == .status("PONG"))
    }

    @Test func scriptIsReloadedAfterScriptFlush() async throws {
        let server = try await privateRedisServer()
        let redis = try connection(to: server.url)
        let other = try connection(to: server.url)
        let key = TestEnvironment.uniquePrefix("rc-flush")
        let script = RedisScript(name: "incrementBy", source: "return redis.call('INCRBY', KEYS[1], ARGV[1])")
        #expect(try await redis.send(.script(script, keys: [key], arguments: [5])) == .integer(5))
        let sha = try #require(script.sha)

        #expect(try await other.send("SCRIPT", "FLUSH") == .status("OK"))
        #expect(try await other.send("SCRIPT", "EXISTS", sha) == .array([.integer(0)]))

        // NOSCRIPT is handled inside the connection: the caller sees the script's reply.
        #expect(try await redis.send(.script(script, keys: [key], arguments: [2])) == .integer(7))
        #expect(try await other.send("SCRIPT", "EXISTS", sha) == .array([.integer(1)]))
        #expect(try await other.send("GET", key) == bulk("7"))
    }

    @Test func concurrentScriptCallsAfterScriptFlushAllSucceed() async throws {
        let server = try await privateRedisServer()
        let redis = try connection(to: server.url)
        let other = try connection(to: server.url)
        let key = TestEnvironment.uniquePrefix("rc-flush-many")
        let script = RedisScript(name: "incrementBy", source: "return redis.call('INCRBY', KEYS[1], ARGV[1])")
        try await redis.send(.script(script, keys: [key], arguments: [1]))
        try await other.send("SCRIPT", "FLUSH")
        let replies = try await withThrowingTaskGroup(of: Int64?.self) { group in
            for _ in 0..<50 {
                group.addTask { try await redis.send(.script(script, keys: [key], arguments: [1])).int }
            }
            var replies: [Int64?] = []
            for try await reply in group { replies.append(reply) }
            return replies
        }
        #expect(Set(replies.compactMap { $0 }) == Set(2...51))
        #expect(try await other.send("GET", key) == bulk("51"))
    }

    @Test func pipelineKeepsItsOrderWhenAScriptIsReloaded() async throws {
        let server = try await privateRedisServer()
        let redis = try connection(to: server.url)
        let other = try connection(to: server.url)
        let key = TestEnvironment.uniquePrefix("rc-flush-order")
        let script = RedisScript(name: "setValue", source: "return redis.call('SET', KEYS[1], ARGV[1])")
        try await redis.send(.script(script, keys: [key], arguments: ["warm-up"]))
        try await other.send("SCRIPT", "FLUSH")

        let replies = try await redis.pipeline([
            .script(script, keys: [key], arguments: ["from-script"]),
            RedisCommand("SET", key, "from-set"),
        ])
        #expect(replies == [.status("OK"), .status("OK")])
        // Redis runs a pipeline in order, so the plain SET must win.
        #expect(try await other.send("GET", key) == bulk("from-set"))
    }

    @Test func scriptIsReloadedAfterRedisRestarts() async throws {
        let server = try await privateRedisServer()
        let redis = try connection(to: server.url) { $0.reconnectDeadline = .seconds(5) }
        let script = RedisScript(name: "echoKeyAndArgument", source: Self.echo)
        #expect(try await redis.send(.script(script, keys: ["a"], arguments: ["b"])).array?.count == 4)
        try await server.restart()
        // The first command may meet the dead socket; the point is that scripts come back.
        _ = try? await redis.send("PING")
        #expect(try await redis.send(.script(script, keys: ["c"], arguments: ["d"]))
            == .array([bulk("c"), bulk("d"), .integer(1), .integer(1)]))
    }
}
