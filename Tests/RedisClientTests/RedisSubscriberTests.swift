import RedisClient
import Testing
import TestSupport

/// Pub/sub: confirmation before `subscribe` returns, exact payloads, patterns, several
/// listeners on one connection, and renewal after Redis restarts.
@Suite(.runsClients) struct RedisSubscriberTests {
    /// A subscriber to `url`.
    static func subscriber(to url: String, _ adjust: (inout RedisConfiguration) -> Void = { _ in }) throws -> RedisSubscriber {
        var configuration = try RedisConfiguration(url: url)
        adjust(&configuration)
        return runInTest(RedisSubscriber(configuration: configuration))
    }

    @Test func subscribeReturnsOnceConfirmedAndDeliversExactBytes() async throws {
        let url = try TestEnvironment.redisURL()
        let channel = TestEnvironment.uniquePrefix("rc-ch")
        let subscriber = try Self.subscriber(to: url)
        let publisher = try connection(to: url)

        let reader = StreamReader(try await subscriber.subscribe([channel]))
        // Confirmed before subscribe returned: the first publish already has a receiver.
        #expect(try await publisher.send("PUBLISH", channel, "first") == .integer(1))
        let payload: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF, 0x68, 0x69, 0x00]
        #expect(try await publisher.send("PUBLISH", channel, payload) == .integer(1))

        let arrived = await eventually { reader.recorder.all.count >= 2 }
        #expect(arrived)
        #expect(reader.recorder.all.prefix(2) == [
            .message(channel: channel, payload: Array("first".utf8)),
            .message(channel: channel, payload: payload),
        ])
        await reader.stop()
    }

    @Test func messagesArriveInPublishOrder() async throws {
        let url = try TestEnvironment.redisURL()
        let channel = TestEnvironment.uniquePrefix("rc-order")
        let subscriber = try Self.subscriber(to: url)
        let publisher = try connection(to: url)
        let reader = StreamReader(try await subscriber.subscribe([channel]))
        let sent = (0..<100).map { "m\($0)" }
        _ = try await publisher.pipeline(sent.map { RedisCommand("PUBLISH", channel, $0) })
        let all = await eventually { reader.payloads(on: channel).count == sent.count }
        #expect(all)
        #expect(reader.payloads(on: channel) == sent)
        await reader.stop()
    }

    @Test func subscribeToSeveralChannelsAtOnce() async throws {
        let url = try TestEnvironment.redisURL()
        let prefix = TestEnvironment.uniquePrefix("rc-multi")
        let (first, second) = ("\(prefix):a", "\(prefix):b")
        let subscriber = try Self.subscriber(to: url)
        let publisher = try connection(to: url)
        let reader = StreamReader(try await subscriber.subscribe([first, second]))
        #expect(try await publisher.send("PUBLISH", first, "to-a") == .integer(1))
        #expect(try await publisher.send("PUBLISH", second, "to-b") == .integer(1))
        #expect(try await publisher.send("PUBLISH", "\(prefix):c", "to-c") == .integer(0))
        #expect(await reader.waitFor("to-a", on: first))
        #expect(await reader.waitFor("to-b", on: second))
        #expect(reader.payloads(on: "\(prefix):c").isEmpty)
        await reader.stop()
    }

    @Test func patternSubscription() async throws {
        let url = try TestEnvironment.redisURL()
        let prefix = TestEnvironment.uniquePrefix("rc-pat")
        let subscriber = try Self.subscriber(to: url)
        let publisher = try connection(to: url)
        let reader = StreamReader(try await subscriber.subscribe(["\(prefix):*"], patterns: true))

        #expect(try await publisher.send("PUBLISH", "\(prefix):jobs", "p1") == .integer(1))
        #expect(try await publisher.send("PUBLISH", "other-\(prefix)", "not-matching") == .integer(0))
        #expect(await reader.waitFor("p1", on: "\(prefix):jobs"))
        #expect(reader.recorder.all == [.message(channel: "\(prefix):jobs", payload: Array("p1".utf8))])
        await reader.stop()
    }

    @Test func channelAndPatternListenersEachGetTheirOwnCopy() async throws {
        let url = try TestEnvironment.redisURL()
        let prefix = TestEnvironment.uniquePrefix("rc-both")
        let channel = "\(prefix):x"
        let subscriber = try Self.subscriber(to: url)
        let publisher = try connection(to: url)
        let byChannel = StreamReader(try await subscriber.subscribe([channel]))
        let byPattern = StreamReader(try await subscriber.subscribe(["\(prefix):*"], patterns: true))
        // One subscription and one pattern match on the same connection.
        #expect(try await publisher.send("PUBLISH", channel, "hello") == .integer(2))
        #expect(await byChannel.waitFor("hello", on: channel))
        #expect(await byPattern.waitFor("hello", on: channel))
        try await Task.sleep(for: .milliseconds(100))
        #expect(byChannel.recorder.all.count == 1)
        #expect(byPattern.recorder.all.count == 1)
        await byChannel.stop()
        await byPattern.stop()
    }

    @Test func twoListenersOnOneChannelBothReceiveAndEndIndependently() async throws {
        let url = try TestEnvironment.redisURL()
        let channel = TestEnvironment.uniquePrefix("rc-two")
        let subscriber = try Self.subscriber(to: url)
        let publisher = try connection(to: url)
        let first = StreamReader(try await subscriber.subscribe([channel]))
        let second = StreamReader(try await subscriber.subscribe([channel]))

        // One connection, one subscription, two listeners.
        #expect(try await publisher.send("PUBLISH", channel, "both") == .integer(1))
        #expect(await first.waitFor("both", on: channel))
        #expect(await second.waitFor("both", on: channel))

        await first.stop()
        #expect(first.isFinished)
        #expect(try await publisher.send("PUBLISH", channel, "second-only") == .integer(1))
        #expect(await second.waitFor("second-only", on: channel))
        #expect(!second.isFinished)
        #expect(first.payloads(on: channel) == ["both"])

        // Ending the last listener unsubscribes the connection.
        await second.stop()
        let unsubscribed = try await eventually {
            try await publisher.send("PUBSUB", "NUMSUB", channel) == .array([bulk(channel), .integer(0)])
        }
        #expect(unsubscribed)
    }

    @Test func closeFinishesEveryStream() async throws {
        let url = try TestEnvironment.redisURL()
        let channel = TestEnvironment.uniquePrefix("rc-close")
        let subscriber = try Self.subscriber(to: url)
        let reader = StreamReader(try await subscriber.subscribe([channel]))
        #expect(!reader.isFinished)
        subscriber.close()
        #expect(await eventually { reader.isFinished })
        let error = await redisError { _ = try await subscriber.subscribe([channel + ":later"]) }
        #expect(error?.kind == .closed)
    }

    @Test func subscribeFailsWhenRedisIsUnreachable() async throws {
        let server = try await privateRedisServer()
        await server.stop()
        let subscriber = try Self.subscriber(to: server.url) { $0.reconnectDeadline = .seconds(1) }
        let error = await redisError { _ = try await subscriber.subscribe([TestEnvironment.uniquePrefix("rc-down")]) }
        #expect(error?.kind == .connectionFailed)
    }

    @Test func resubscribesAfterRestart() async throws {
        let server = try await privateRedisServer()
        let channel = TestEnvironment.uniquePrefix("rc-resub")
        let pattern = TestEnvironment.uniquePrefix("rc-resub-p") + ":*"
        let subscriber = try Self.subscriber(to: server.url) { $0.reconnectDeadline = .seconds(5) }
        let reader = StreamReader(try await subscriber.subscribe([channel]))
        let patternReader = StreamReader(try await subscriber.subscribe([pattern], patterns: true))
        let before = try connection(to: server.url)
        #expect(try await before.send("PUBLISH", channel, "before") == .integer(1))
        #expect(await reader.waitFor("before", on: channel))

        try await server.restart()
        let renewed = await eventually {
            reader.recorder.all.contains(.resubscribed) && patternReader.recorder.all.contains(.resubscribed)
        }
        #expect(renewed)

        // `.resubscribed` promises the subscriptions are in place again.
        let after = try connection(to: server.url)
        #expect(try await after.send("PUBLISH", channel, "after") == .integer(1))
        #expect(await reader.waitFor("after", on: channel))
        let matching = String(pattern.dropLast()) + "x"
        #expect(try await after.send("PUBLISH", matching, "after-p") == .integer(1))
        #expect(await patternReader.waitFor("after-p", on: matching))
        #expect(!reader.isFinished)
        await reader.stop()
        await patternReader.stop()
    }
}
