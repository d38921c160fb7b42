import RedisClient
import Testing
import TestSupport

/// Commands and replies over one connection to the shared Redis: binary safety, reply
/// mapping, error replies and pipelining.
@Suite(.runsClients) struct RedisConnectionTests {
    @Test func binaryValuesRoundTrip() async throws {
        let redis = try sharedConnection()
        let key = TestEnvironment.uniquePrefix("rc-bin")
        let value: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF, 0x24, 0x2A, 0x00, 0x0A, 0x2D, 0x3A, 0xFE, 0x00]
        #expect(try await redis.send("SET", key, value) == .status("OK"))
        #expect(try await redis.send("GET", key) == .bulk(value))
        #expect(try await redis.send("STRLEN", key) == .integer(Int64(value.count)))
    }

    @Test func binaryKeysRoundTrip() async throws {
        let redis = try sharedConnection()
        let key = Array(TestEnvironment.uniquePrefix("rc-binkey").utf8) + [0x00, 0x0D, 0x0A, 0xFF]
        #expect(try await redis.send("SET", key, "v") == .status("OK"))
        #expect(try await redis.send("GET", key) == bulk("v"))
        #expect(try await redis.send("EXISTS", Array(key.dropLast())) == .integer(0))
    }

    @Test func largeValueRoundTrips() async throws {
        let redis = try sharedConnection()
        let key = TestEnvironment.uniquePrefix("rc-large")
        // 3 MiB, more than one socket buffer each way, every byte value present.
        let value = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 7) }
        #expect(try await redis.send("SET", key, value) == .status("OK"))
        #expect(try await redis.send("GET", key) == .bulk(value))
        #expect(try await redis.send("DEL", key) == .integer(1))
    }

    @Test func emptyStringIsNotNull() async throws {
        let redis = try sharedConnection()
        let key = TestEnvironment.uniquePrefix("rc-empty")
        try await redis.send("SET", key, "")
        #expect(try await redis.send("GET", key) == .bulk([]))
        #expect(try await redis.send("GET", key + ":missing") == .null)
    }

    @Test func replyKindsAreMapped() async throws {
        let redis = try sharedConnection()
        let key = TestEnvironment.uniquePrefix("rc-kinds")
        #expect(try await redis.send("PING") == .status("PONG"))
        #expect(try await redis.send("INCR", key + ":n") == .integer(1))
        #expect(try await redis.send("DECRBY", key + ":n", 5) == .integer(-4))
        #expect(try await redis.send("INCRBY", key + ":big", Int64.max) == .integer(Int64.max))
        #expect(try await redis.send("GET", key + ":none") == .null)
        #expect(try await redis.send("RPUSH", key + ":list", "a", "b", "c") == .integer(3))
        #expect(try await redis.send("LRANGE", key + ":list", 0, -1) == .array([bulk("a"), bulk("b"), bulk("c")]))
        #expect(try await redis.send("LRANGE", key + ":none", 0, -1) == .array([]))
        #expect(try await redis.send("MGET", key + ":list", key + ":none", key + ":n")
            == .array([.null, .null, bulk("-4")]))
        #expect(try await redis.send("BLPOP", key + ":none", "0.01") == .null)
        #expect(try await redis.send("TYPE", key + ":list") == .status("list"))
    }

    @Test func nestedArraysAreMapped() async throws {
        let redis = try sharedConnection()
        let reply = try await redis.send("EVAL", "return {1, {2, 'x', {}}, 'y', false}", 0)
        #expect(reply == .array([.integer(1), .array([.integer(2), bulk("x"), .array([])]), bulk("y"), .null]))
    }

    @Test func errorReplyThrowsAServerError() async throws {
        let redis = try sharedConnection()
        let unknown = await redisError { try await redis.send("NOSUCHCOMMAND", "x") }
        #expect(unknown?.kind == .server)
        #expect(unknown?.serverCode == "ERR")
        #expect(unknown?.isTransient == false)

        let key = TestEnvironment.uniquePrefix("rc-wrongtype")
        try await redis.send("SET", key, "string")
        let wrongType = await redisError { try await redis.send("LPUSH", key, "x") }
        #expect(wrongType?.kind == .server)
        #expect(wrongType?.serverCode == "WRONGTYPE")
        #expect(wrongType?.serverDetail.contains("wrong kind of value") == true)

        // The error reply leaves the connection usable.
        #expect(try await redis.send("GET", key) == bulk("string"))
    }

    @Test func commandObjectAndVariadicSendAgree() async throws {
        let redis = try sharedConnection()
        let key = TestEnvironment.uniquePrefix("rc-cmd")
        try await redis.send(RedisCommand("HSET", key, "field", 12))
        #expect(try await redis.send(RedisCommand(arguments: [Array("HGET".utf8), Array(key.utf8), Array("field".utf8)]))
            == bulk("12"))
        #expect(try await redis.send("HGET", key, "field").int == 12)
    }

    @Test func pipelineReturnsErrorRepliesInPlace() async throws {
        let redis = try sharedConnection()
        let key = TestEnvironment.uniquePrefix("rc-pipe-err")
        let replies = try await redis.pipeline([
            RedisCommand("SET", key, "v"),
            RedisCommand("LPUSH", key, "x"),
            RedisCommand("NOSUCHCOMMAND"),
            RedisCommand("GET", key),
        ])
        #expect(replies.count == 4)
        #expect(replies[0] == .status("OK"))
        guard case .error(let wrongType) = replies[1], case .error(let unknown) = replies[2] else {
            Issue.record("expected two error replies in place, got \(replies)")
            return
        }
        #expect(wrongType.hasPrefix("WRONGTYPE"))
        #expect(unknown.hasPrefix("ERR"))
        #expect(replies[3] == bulk("v"))
    }

    @Test func emptyPipelineReturnsNothing() async throws {
        let redis = try sharedConnection()
        #expect(try await redis.pipeline([]).isEmpty)
    }

    @Test func pipelineOf100CommandsKeepsOrder() async throws {
        let redis = try sharedConnection()
        let key = TestEnvironment.uniquePrefix("rc-pipe100")
        let commands = (1...100).map { index in
            index.isMultiple(of: 2) ? RedisCommand("RPUSH", key, index) : RedisCommand("LLEN", key)
        }
        let replies = try await redis.pipeline(commands)
        // RPUSH of the n-th even number returns n; LLEN before it returns n - 1.
        let expected: [RESPValue] = (1...100).map { index in .integer(Int64(index / 2)) }
        #expect(replies == expected)
        let stored = try await redis.send("LRANGE", key, 0, -1)
        #expect(stored == .array(stride(from: 2, through: 100, by: 2).map { bulk(String($0)) }))
    }

    @Test func twoHundredConcurrentSendsArePipelined() async throws {
        let redis = try sharedConnection()
        let key = TestEnvironment.uniquePrefix("rc-incr")
        let replies = try await withThrowingTaskGroup(of: Int64?.self) { group in
            for _ in 0..<200 {
                group.addTask { try await redis.send("INCR", key).int }
            }
            var replies: [Int64?] = []
            for try await reply in group { replies.append(reply) }
            return replies
        }
        #expect(replies.count == 200)
        // Every INCR ran exactly once and got its own reply.
        #expect(Set(replies.compactMap { $0 }) == Set(1...200))
        #expect(try await redis.send("GET", key) == bulk("200"))
    }

    @Test func concurrentPipelinesEachGetTheirOwnReplies() async throws {
        let redis = try sharedConnection()
        let prefix = TestEnvironment.uniquePrefix("rc-mixpipe")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<20 {
                group.addTask {
                    let key = "\(prefix):\(task)"
                    let replies = try await redis.pipeline([
                        RedisCommand("SET", key, "value-\(task)"),
                        RedisCommand("GET", key),
                        RedisCommand("APPEND", key, "!"),
                    ])
                    #expect(replies == [.status("OK"), bulk("value-\(task)"), .integer(Int64("value-\(task)!".utf8.count))])
                }
            }
            try await group.waitForAll()
        }
    }

    @Test func clientNameIsSet() async throws {
        let name = TestEnvironment.uniquePrefix("rc-name")
        let redis = try sharedConnection(clientName: name)
        #expect(try await redis.send("CLIENT", "GETNAME") == bulk(name))
    }

    @Test func endpointDescriptionIsMasked() throws {
        let redis = try connection(to: "redis://u:do-not-show-me@127.0.0.1:1/2")
        #expect(redis.endpointDescription == "redis://u:***@127.0.0.1:1/2")
    }

    @Test func closedConnectionRefusesCommands() async throws {
        let redis = try sharedConnection()
        #expect(try await redis.send("PING") == .status("PONG"))
        redis.close()
        let error = await redisError { try await redis.send("PING") }
        #expect(error?.kind == .closed)
    }
}
