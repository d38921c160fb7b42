import RedisClient
import Testing
import TestSupport

/// Reconnects, timeouts, cancellation and blocking commands, mostly against private servers
/// a test may stop, restart or put to sleep.
@Suite(.runsClients) struct RedisConnectionFailureTests {
    // MARK: Reconnect

    @Test func commandAfterRestartSucceeds() async throws {
        let server = try await privateRedisServer()
        let redis = try connection(to: server.url) { $0.reconnectDeadline = .seconds(5) }
        #expect(try await redis.send("PING") == .status("PONG"))
        try await server.restart()
        #expect(try await redis.send("PING") == .status("PONG"))
        // Whatever happened to the first command, the connection is usable again.
        #expect(try await redis.send("PING") == .status("PONG"))
    }

    @Test func commandAfterCrashAndRestartSucceeds() async throws {
        let server = try await privateRedisServer()
        let redis = try connection(to: server.url) { $0.reconnectDeadline = .seconds(5) }
        let key = TestEnvironment.uniquePrefix("rc-crash")
        try await redis.send("SET", key, "before")
        await server.kill()
        try await server.start()
        #expect(try await redis.send("SET", key, "after") == .status("OK"))
        #expect(try await redis.send("INCR", key + ":n") == .integer(1))
    }

    @Test func commandWaitsForRedisToComeBack() async throws {
        let server = try await privateRedisServer()
        await server.stop()
        let redis = try connection(to: server.url) { $0.reconnectDeadline = .seconds(10) }
        // Sent while Redis is down: the connection keeps trying until it is back.
        let ping = Task { try await redis.send("PING") }
        try await Task.sleep(for: .milliseconds(300))
        try await server.start()
        #expect(try await ping.value == .status("PONG"))
    }

    @Test func unreachableServerFailsWithConnectionFailed() async throws {
        let server = try await privateRedisServer()
        let url = "redis://:never-print-me@127.0.0.1:\(server.port)"
        await server.stop()
        let redis = try connection(to: url) { $0.reconnectDeadline = .seconds(1) }
        let error = await redisError { try await redis.send("PING") }
        #expect(error?.kind == .connectionFailed)
        #expect(error?.isTransient == true)
        #expect(error?.description.contains("never-print-me") == false)
        // Still failing, still the same kind, for the next command.
        let again = await redisError { try await redis.send("PING") }
        #expect(again?.kind == .connectionFailed)
    }

    @Test func stoppedServerFailsWithConnectionFailed() async throws {
        let server = try await privateRedisServer()
        let redis = try connection(to: server.url) { $0.reconnectDeadline = .seconds(1) }
        #expect(try await redis.send("PING") == .status("PONG"))
        await server.stop()
        let first = await redisError { try await redis.send("PING") }
        #expect(first?.kind == .connectionFailed)
        #expect(first?.kind == .connectionFailed || first?.kind == .connectionLost)
        let second = await redisError { try await redis.send("PING") }
        #expect(second?.kind == .connectionFailed)
    }

    @Test func closingWhileReconnectingFailsTheCommandAsClosed() async throws {
        let server = try await privateRedisServer()
        await server.stop()
        let redis = try connection(to: server.url) { $0.reconnectDeadline = .seconds(30) }
        let ping = Task { try await redis.send("PING") }
        try await Task.sleep(for: .milliseconds(200))
        redis.close()
        do {
            let reply = try await ping.value
            Issue.record("PING to a stopped server returned \(reply)")
        } catch let error as RedisError {
            #expect(error.kind == .closed)
        }
    }

    @Test func cancellingWhileReconnectingEndsTheCommand() async throws {
        let server = try await privateRedisServer()
        await server.stop()
        let redis = try connection(to: server.url) { $0.reconnectDeadline = .seconds(2) }
        let ping = Task { try await redis.send("PING") }
        try await Task.sleep(for: .milliseconds(200))
        ping.cancel()
        let result = await ping.result
        // Without cancellation support it fails anyway, as .connectionFailed, once the
        // reconnect deadline has passed.
        if case .failure(let error as RedisError) = result {
            #expect(error.kind == .cancelled)
        } else {
            Issue.record("expected a .cancelled RedisError, got \(result)")
        }
    }

    @Test func aReconnectThatCannotReloadItsScriptsStillAnswersTheCommand() async throws {
        let server = try await privateRedisServer(["--enable-debug-command", "yes"])
        // No client name, so nothing is asked on connect before the scripts are loaded again.
        let redis = try connection(to: server.url) {
            $0.commandTimeout = .milliseconds(300)
            $0.reconnectDeadline = .seconds(10)
        }
        let other = try connection(to: server.url)
        let script = RedisScript(name: "one", source: "return 1")
        #expect(try await redis.send(.script(script, keys: [], arguments: [])) == .integer(1))

        // The connection is dropped, then Redis stalls: the next command reconnects (the
        // kernel accepts for a stalled server), but loading the used scripts again times out.
        try await other.send("CLIENT", "KILL", "SKIPME", "yes")
        let stall = Task { try await other.send(RedisCommand("DEBUG", "SLEEP", "1"), timeout: .seconds(10)) }
        try await Task.sleep(for: .milliseconds(150))
        let replies = EventRecorder<RESPValue>()
        let ping = Task { replies.record(try await redis.send("PING")) }
        // It must end, never wait forever: here, answered once Redis is awake again.
        let answered = await eventually(within: .seconds(15)) { !replies.all.isEmpty }
        _ = try await stall.value
        #expect(answered, "a command sent while the scripts could not be reloaded never ended")
        #expect(replies.all == [.status("PONG")])
        ping.cancel()
        #expect(try await redis.send(.script(script, keys: [], arguments: [])) == .integer(1))
    }

    // MARK: Timeout

    @Test func slowReplyTimesOutAndTheConnectionRecovers() async throws {
        let server = try await privateRedisServer(["--enable-debug-command", "yes"])
        let redis = try connection(to: server.url) { $0.commandTimeout = .milliseconds(300) }
        #expect(try await redis.send("PING") == .status("PONG"))
        let error = await redisError { try await redis.send("DEBUG", "SLEEP", "1") }
        #expect(error?.kind == .timeout)
        #expect(error?.isTransient == true)
        // Redis may still be asleep: allow this one longer than the 300 ms default.
        #expect(try await redis.send(RedisCommand("PING"), timeout: .seconds(5)) == .status("PONG"))
        #expect(try await redis.send("PING") == .status("PONG"))
    }

    @Test func perCommandTimeoutOverridesTheDefault() async throws {
        let server = try await privateRedisServer(["--enable-debug-command", "yes"])
        let redis = try connection(to: server.url) { $0.commandTimeout = .milliseconds(300) }
        #expect(try await redis.send(RedisCommand("DEBUG", "SLEEP", "0.5"), timeout: .seconds(5)) == .status("OK"))
    }

    // MARK: Blocking commands and cancellation

    @Test func blockingCommandsStayOffTheCooperativePool() async throws {
        let server = try await privateRedisServer()
        let key = TestEnvironment.uniquePrefix("rc-blpop")
        let waiters = try (0..<4).map { _ in try connection(to: server.url) }
        let other = try connection(to: server.url)
        let order = EventRecorder<String>()

        let popped = try await withThrowingTaskGroup(of: RESPValue.self) { group in
            for waiter in waiters {
                group.addTask {
                    // A long block: the RPUSH below ends each wait, however loaded the machine.
                    let reply = try await waiter.send(RedisCommand("BLPOP", key, 30), timeout: .seconds(35))
                    order.record("blpop")
                    return reply
                }
            }
            // All four are blocked in Redis now, each holding its own connection.
            let allBlocked = try await eventually {
                try await infoField("blocked_clients", section: "clients", on: other) == "4"
            }
            #expect(allBlocked)
            #expect(try await other.send("PING") == .status("PONG"))
            order.record("ping")
            let sum = await Task { (1...1000).reduce(0, +) }.value
            #expect(sum == 500_500)
            order.record("task")

            try await other.send("RPUSH", key, "a", "b", "c", "d")
            var popped: [RESPValue] = []
            for try await reply in group { popped.append(reply) }
            return popped
        }
        #expect(order.all.prefix(2) == ["ping", "task"])
        #expect(order.all.count == 6)
        // Each BLPOP was woken by an element, not by its own timeout.
        let values = popped.compactMap { $0.array?.last?.string }
        #expect(values.sorted() == ["a", "b", "c", "d"])
    }

    @Test func cancellingABlockingCommandInterruptsIt() async throws {
        let name = TestEnvironment.uniquePrefix("rc-cancel")
        let key = name + ":list"
        let waiter = try sharedConnection(clientName: name)
        let observer = try sharedConnection()

        // A block far longer than a loaded machine can stall this test: the BLPOP must end by
        // the cancellation, never by its own timeout.
        let blocked = Task { try await waiter.send(RedisCommand("BLPOP", key, 300), timeout: .seconds(310)) }
        let isBlocking = try await eventually(within: .seconds(120)) {
            try await blockedClients(named: name, on: observer) == 1
        }
        try #require(isBlocking)
        blocked.cancel()

        switch await blocked.result {
        case .success(let reply):
            Issue.record("cancelled BLPOP returned \(reply) instead of ending with a cancellation")
        case .failure(let error as RedisError):
            #expect(error.kind == .cancelled)
        case .failure(let error):
            #expect(error is CancellationError)
        }
        // The same connection works afterwards…
        #expect(try await waiter.send("PING") == .status("PONG"))
        // …and the abandoned BLPOP no longer waits in Redis to swallow an element.
        let abandoned = try await eventually { try await blockedClients(named: name, on: observer) == 0 }
        #expect(abandoned)
        try await observer.send("RPUSH", key, "kept")
        #expect(try await observer.send("LRANGE", key, 0, -1) == .array([bulk("kept")]))
    }

    @Test func alreadyCancelledTaskDoesNotSend() async throws {
        let redis = try sharedConnection()
        let key = TestEnvironment.uniquePrefix("rc-precancel")
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await redis.send("SET", key, "should-not-be-set")
        }
        let result = await task.result
        if case .failure(let error as RedisError) = result {
            #expect(error.kind == .cancelled)
        } else {
            Issue.record("expected a .cancelled RedisError, got \(result)")
        }
        #expect(try await redis.send("EXISTS", key) == .integer(0))
    }

    @Test func cancellingAQueuedCommandLeavesTheOneInFlightAlone() async throws {
        let server = try await privateRedisServer()
        let key = TestEnvironment.uniquePrefix("rc-cancel-queued")
        let redis = try connection(to: server.url)
        let other = try connection(to: server.url)
        // Long enough that the BLPOP cannot time out however loaded the machine is.
        let blocked = Task { try await redis.send(RedisCommand("BLPOP", key, 300), timeout: .seconds(310)) }
        let isBlocked = try await eventually(within: .seconds(120)) {
            try await infoField("blocked_clients", section: "clients", on: other) == "1"
        }
        #expect(isBlocked)
        // Queued behind the BLPOP on the same connection, then cancelled before it is sent.
        let queued = Task { try await redis.send("SET", key + ":flag", "should-not-be-set") }
        try await Task.sleep(for: .milliseconds(100))
        queued.cancel()
        let queuedResult = await queued.result
        if case .failure(let error as RedisError) = queuedResult {
            #expect(error.kind == .cancelled)
        } else {
            Issue.record("expected the queued SET to be cancelled, got \(queuedResult)")
        }
        // The BLPOP still waits, and gets the element.
        try await other.send("RPUSH", key, "x")
        #expect(try await blocked.value == .array([bulk(key), bulk("x")]))
        #expect(try await other.send("EXISTS", key + ":flag") == .integer(0))
    }
}
