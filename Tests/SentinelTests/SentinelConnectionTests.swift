import Foundation
import RedisClient
import Testing
import TestSupport

/// `RedisConnection` and `RedisSubscriber` on a `redis+sentinel://` URL against real
/// sentinels: they reach the master the sentinels name, follow it when it is killed or
/// demoted, and say what is wrong when the sentinels cannot help. One deployment (master,
/// replica, three sentinels) per test; the tests run one at a time, as each moves a master.
@Suite(.runsClients, .serialized) struct SentinelConnectionTests {
    @Test func readsAndWritesOnTheMasterTheSentinelsName() async throws {
        let deployment = try await LocalSentinel.start()
        defer { withExtendedLifetime(deployment) {} }
        let redis = try connection(to: deployment.url)
        let key = TestEnvironment.uniquePrefix("sn-rw")

        #expect(try await redis.send("SET", key, "on-the-master") == .status("OK"))
        #expect(try await redis.send("GET", key) == bulk("on-the-master"))
        #expect(try await reachedPort(redis) == deployment.masterPort)
        // The write is on the master itself, and the replica gets it from there.
        #expect(try await deployment.node(deployment.masterPort, ["GET", key]) == bulk("on-the-master"))
        let replicated = try await eventually {
            try await deployment.node(deployment.replicaPort, ["GET", key]) == bulk("on-the-master")
        }
        #expect(replicated)
        await deployment.stop()
    }

    @Test func aConnectionWorksAgainOnThePromotedReplicaAfterTheMasterIsKilled() async throws {
        let deployment = try await LocalSentinel.start()
        defer { withExtendedLifetime(deployment) {} }
        let redis = try connection(to: deployment.url)
        let key = TestEnvironment.uniquePrefix("sn-kill")
        #expect(try await redis.send("SET", key, "before") == .status("OK"))
        #expect(try await reachedPort(redis) == deployment.masterPort)

        let killed = try await deployment.killMaster()
        #expect(killed == deployment.masterPort)
        // Commands fail while the sentinels still name the dead master; the same connection
        // works again once they have promoted the replica.
        var failures: [String] = []
        let recovered = await eventually(within: .seconds(90)) {
            do {
                guard try await redis.send("SET", key, "after") == .status("OK") else { return false }
                return try await redis.send("GET", key) == bulk("after")
            } catch {
                failures.append("\(error)")
                return false
            }
        }
        #expect(recovered, "failures: \(failures.suffix(5))\n\(deployment.logTail())")
        #expect(try await reachedPort(redis) == deployment.replicaPort)
        #expect(try await deployment.waitForMaster(notOn: killed) == deployment.replicaPort)
        #expect(try await deployment.node(deployment.replicaPort, ["GET", key]) == bulk("after"))
        await deployment.stop()
    }

    @Test func anIdleConnectionWritesOnTheNewMasterAfterALiveFailover() async throws {
        let deployment = try await LocalSentinel.start()
        defer { withExtendedLifetime(deployment) {} }
        let redis = try connection(to: deployment.url)
        let key = TestEnvironment.uniquePrefix("sn-idle")
        #expect(try await redis.send("SET", key, "before") == .status("OK"))
        #expect(try await reachedPort(redis) == deployment.masterPort)

        let old = try await deployment.failover()
        let new = try await deployment.waitForMaster(notOn: old)
        try await deployment.waitForReplica(on: old)
        #expect(new == deployment.replicaPort)

        // The connection sat idle on the old master through the demotion. A caller may see a
        // transient failure once; after a few tries the write is on the new master, and no
        // READONLY is left.
        var errors: [RedisError] = []
        var written = false
        for _ in 0..<4 where !written {
            do {
                written = try await redis.send("SET", key, "after") == .status("OK")
            } catch let error as RedisError {
                errors.append(error)
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(written, "errors: \(errors)")
        #expect(errors.count <= 1, "errors: \(errors)")
        #expect(try await reachedPort(redis) == new)
        #expect(try await deployment.node(new, ["GET", key]) == bulk("after"))
        // Later writes never meet the replica either.
        for index in 0..<20 {
            #expect(try await redis.send("SET", "\(key):\(index)", "later") == .status("OK"))
        }
        #expect(try await deployment.node(new, ["GET", "\(key):19"]) == bulk("later"))
        await deployment.stop()
    }

    @Test func aBlockingWaitOnTheOldMasterIsEndedByTheFailover() async throws {
        let deployment = try await LocalSentinel.start()
        defer { withExtendedLifetime(deployment) {} }
        let redis = try connection(to: deployment.url)
        let key = TestEnvironment.uniquePrefix("sn-blpop")

        // BLPOP with no timeout of its own: only the failover can end it within the test.
        let first = Outcome<Result<RESPValue, any Error>>()
        let waiting = Task {
            do { first.set(.success(try await redis.send(RedisCommand("BLPOP", key, "0"), timeout: .seconds(600)))) }
            catch { first.set(.failure(error)) }
        }
        let blocked = try await eventually {
            try await infoField("blocked_clients", section: "clients", port: deployment.masterPort, on: deployment) == "1"
        }
        try #require(blocked, "the BLPOP never blocked on the master")

        let old = try await deployment.failover()
        let ended = await eventually(within: .seconds(90)) { first.current != nil }
        #expect(ended, "the BLPOP on the old master was not ended by the failover\n\(deployment.logTail())")
        if case .success(let reply) = first.current {
            Issue.record("the BLPOP answered \(reply) though nothing was pushed")
        }
        if ended { await waiting.value }
        let new = try await deployment.waitForMaster(notOn: old)
        try await deployment.waitForReplica(on: old)

        // A new BLPOP on the same connection waits on the new master and is answered there.
        let second = Outcome<Result<RESPValue, any Error>>()
        let answering = Task {
            do { second.set(.success(try await redis.send(RedisCommand("BLPOP", key, "0"), timeout: .seconds(600)))) }
            catch { second.set(.failure(error)) }
        }
        let blockedAgain = try await eventually {
            try await infoField("blocked_clients", section: "clients", port: new, on: deployment) == "1" || second.current != nil
        }
        #expect(blockedAgain)
        #expect(try await infoField("blocked_clients", section: "clients", port: old, on: deployment) == "0")
        #expect(try await deployment.node(new, ["LPUSH", key, "pushed-on-the-new-master"]) == .integer(1))
        let answered = await eventually { second.current != nil }
        #expect(answered)
        switch second.current {
        case .success(let reply): #expect(reply == .array([bulk(key), bulk("pushed-on-the-new-master")]))
        case .failure(let error): Issue.record("the BLPOP on the new master failed: \(error)")
        case nil: answering.cancel()
        }
        await answering.value
        await deployment.stop()
    }

    @Test func aSubscriberReceivesWhatIsPublishedOnTheNewMaster() async throws {
        let deployment = try await LocalSentinel.start()
        defer { withExtendedLifetime(deployment) {} }
        let channel = TestEnvironment.uniquePrefix("sn-ch")
        let subscriber = try subscriber(to: deployment.url)
        let reader = StreamReader(try await subscriber.subscribe([channel]))
        #expect(try await deployment.node(deployment.masterPort, ["PUBLISH", channel, "before"]) == .integer(1))
        #expect(await eventually { reader.payloads(on: channel).contains("before") })

        let old = try await deployment.failover()
        let new = try await deployment.waitForMaster(notOn: old)
        try await deployment.waitForReplica(on: old)

        // PUBLISH counts the new master's own subscribers only (a replica gets the message by
        // replication too, so receiving it alone would not show where the subscriber is).
        var published = 0
        var receivers: RESPValue = .null
        let moved = try await eventually(within: .seconds(90)) {
            published += 1
            receivers = try await deployment.node(new, ["PUBLISH", channel, "after-\(published)"])
            return receivers == .integer(1)
        }
        #expect(moved, "the subscriber never subscribed on the new master (PUBLISH answered \(receivers))")
        #expect(await eventually { reader.payloads(on: channel).contains("after-\(published)") },
                "received: \(reader.payloads(on: channel))")
        #expect(reader.all.contains(.resubscribed))
        #expect(try await deployment.node(old, ["PUBSUB", "NUMSUB", channel]) == .array([bulk(channel), .integer(0)]))
        await reader.stop()
        await deployment.stop()
    }

    @Test func anUnknownMasterNameIsMisconfigured() async throws {
        let deployment = try await LocalSentinel.start()
        defer { withExtendedLifetime(deployment) {} }
        let url = deployment.url.replacingOccurrences(of: "/\(deployment.masterName)", with: "/no-such-master")
        let redis = try connection(to: url)
        let error = await redisError { try await redis.send("PING") }
        #expect(error?.kind == .misconfigured, "\(String(describing: error))")
        #expect(error?.message.contains("no-such-master") == true, "\(String(describing: error))")
        #expect(error?.isSetupError == true)
        await deployment.stop()
    }

    @Test func noSentinelReachableIsAConnectionFailure() async throws {
        let ports = try (0..<2).map { _ in try RedisServer.freePort() }
        let url = "redis+sentinel://127.0.0.1:\(ports[0]),127.0.0.1:\(ports[1])/iq-master"
        let redis = try connection(to: url) { $0.reconnectDeadline = .seconds(1) }
        let error = await redisError { try await redis.send("PING") }
        #expect(error?.kind == .connectionFailed, "\(String(describing: error))")
        #expect(error?.message.contains("no sentinel answered") == true, "\(String(describing: error))")
        // Each sentinel tried is named.
        #expect(error?.message.contains("\(ports[0])") == true && error?.message.contains("\(ports[1])") == true,
                "\(String(describing: error))")
        #expect(error?.isTransient == true)
    }

    @Test func sentinelPasswordAndMasterPasswordBothWork() async throws {
        let masterPassword = "m-\(UInt32.random(in: 1...UInt32.max))"
        let sentinelPassword = "s-\(UInt32.random(in: 1...UInt32.max))"
        let deployment = try await LocalSentinel.start(masterPassword: masterPassword, sentinelPassword: sentinelPassword)
        defer { withExtendedLifetime(deployment) {} }
        let key = TestEnvironment.uniquePrefix("sn-auth")

        // The URL's credentials are the master's; the sentinels' own password is set apart.
        let redis = try connection(to: deployment.url) { $0.sentinel?.password = sentinelPassword }
        #expect(try await redis.send("SET", key, "authenticated") == .status("OK"))
        #expect(try await reachedPort(redis) == deployment.masterPort)
        #expect(try await deployment.node(deployment.masterPort, ["GET", key]) == bulk("authenticated"))

        // A wrong sentinel password is refused as such, a wrong master password too; neither
        // message carries a password.
        let wrongSentinel = try connection(to: deployment.url) {
            $0.sentinel?.password = "wrong"
            $0.reconnectDeadline = .seconds(2)
        }
        let sentinelRefused = await redisError { try await wrongSentinel.send("PING") }
        #expect(sentinelRefused?.kind == .authentication, "\(String(describing: sentinelRefused?.kind))")
        let wrongMaster = try connection(to: deployment.url(password: "wrong")) {
            $0.sentinel?.password = sentinelPassword
            $0.reconnectDeadline = .seconds(2)
        }
        let masterRefused = await redisError { try await wrongMaster.send("PING") }
        #expect(masterRefused?.kind == .authentication, "\(String(describing: masterRefused?.kind))")
        for error in [sentinelRefused, masterRefused].compactMap({ $0 }) {
            #expect(!error.message.contains(masterPassword) && !error.message.contains(sentinelPassword),
                    "a password is in the message")
        }
        await deployment.stop()
    }

    @Test func aSentinelThatWantsAPasswordNoneWasGivenForSaysSo() async throws {
        let sentinelPassword = "s-\(UInt32.random(in: 1...UInt32.max))"
        let deployment = try await LocalSentinel.start(sentinelPassword: sentinelPassword)
        defer { withExtendedLifetime(deployment) {} }
        let redis = try connection(to: deployment.url) { $0.reconnectDeadline = .seconds(2) }
        let error = await redisError { try await redis.send("PING") }
        // As for a server that wants a password none was given for (CLITests: exit 1), the
        // connection fails, saying why for each sentinel.
        #expect(error?.kind == .connectionFailed, "\(String(describing: error))")
        #expect(error?.message.contains("NOAUTH") == true, "\(String(describing: error))")
        #expect(error?.message.contains(sentinelPassword) == false)
        // With it, the same deployment answers.
        let authenticated = try connection(to: deployment.url) { $0.sentinel?.password = sentinelPassword }
        #expect(try await authenticated.send("PING") == .status("PONG"))
        await deployment.stop()
    }

    @Test func theDatabaseInTheURLIsSelectedOnTheMaster() async throws {
        let deployment = try await LocalSentinel.start()
        defer { withExtendedLifetime(deployment) {} }
        let redis = try connection(to: deployment.url(password: nil, database: 3))
        let key = TestEnvironment.uniquePrefix("sn-db")
        #expect(try await redis.send("SET", key, "in-db-3") == .status("OK"))
        #expect(try await deployment.node(deployment.masterPort, ["GET", key]) == .null)
        #expect(try await deployment.node(deployment.masterPort, ["EVAL", "redis.call('SELECT', 3) return redis.call('GET', KEYS[1])", "1", key])
            == bulk("in-db-3"))
        await deployment.stop()
    }
}
