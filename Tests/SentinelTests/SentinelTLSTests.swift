import Foundation
import RedisClient
import Testing
import TestSupport

/// `RedisConnection` on a `rediss+sentinel://` URL against a deployment that speaks TLS only
/// (master, replica and three sentinels on `tls-port`s, with `port 0`, TLS between them too):
/// with the test CA given by `useTLS`, it asks the sentinels over TLS, writes on the master over
/// TLS and follows the master to the promoted replica; with the system's trust store it is
/// refused as a TLS error. One deployment per test; the tests run one at a time.
@Suite(.runsClients, .serialized) struct SentinelTLSTests {
    @Test func writesOnTheMasterTheSentinelsNameOverTLS() async throws {
        let material = try await TLSMaterial.shared()
        let deployment = try await LocalSentinel.start(tls: material)
        defer { withExtendedLifetime(deployment) {} }
        #expect(deployment.url.hasPrefix("rediss+sentinel://127.0.0.1:\(deployment.sentinelPorts[0]),"))
        // TLS only: neither a data server nor a sentinel answers in plaintext.
        for port in [deployment.masterPort, deployment.sentinelPorts[0]] {
            let plaintext = try? await LoopbackRedis.call(port: port, ["PING"], timeout: 5)
            #expect(plaintext != .status("PONG"), "port \(port) answered in plaintext")
        }
        #expect(try await deployment.node(deployment.masterPort, ["CONFIG", "GET", "port"]) == .array([bulk("port"), bulk("0")]))

        let redis = try connection(to: deployment.url) { $0.useTLS(RedisTLS(caFile: material.caFile)) }
        let key = TestEnvironment.uniquePrefix("sn-tls-rw")
        #expect(try await redis.send("SET", key, "over-tls") == .status("OK"))
        #expect(try await redis.send("GET", key) == bulk("over-tls"))
        #expect(try await reachedPort(redis) == deployment.masterPort)
        // On the master itself, and replicated (over TLS) to the replica.
        #expect(try await deployment.node(deployment.masterPort, ["GET", key]) == bulk("over-tls"))
        let replicated = try await eventually {
            try await deployment.node(deployment.replicaPort, ["GET", key]) == bulk("over-tls")
        }
        #expect(replicated, "\(deployment.logTail())")
        await deployment.stop()
    }

    @Test func aTLSConnectionWorksAgainOnThePromotedReplicaAfterTheMasterIsKilled() async throws {
        let material = try await TLSMaterial.shared()
        let deployment = try await LocalSentinel.start(tls: material)
        defer { withExtendedLifetime(deployment) {} }
        let redis = try connection(to: deployment.url) { $0.useTLS(RedisTLS(caFile: material.caFile)) }
        let key = TestEnvironment.uniquePrefix("sn-tls-kill")
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

    @Test func withoutTheCAFileTheSystemTrustStoreRefusesTheSentinels() async throws {
        let material = try await TLSMaterial.shared()
        let deployment = try await LocalSentinel.start(tls: material)
        defer { withExtendedLifetime(deployment) {} }
        // `rediss+sentinel://` alone: TLS with the system's trusted CAs, which do not include the test CA.
        let redis = try connection(to: deployment.url) { $0.reconnectDeadline = .seconds(2) }
        let error = await redisError { try await redis.send("PING") }
        #expect(error?.kind == .tls, "\(String(describing: error))")
        #expect(error?.message.contains("unknown CA") == true, "\(String(describing: error))")
        #expect(error?.isSetupError == true)
        // The deployment itself is fine: with the CA the same URL answers.
        let trusting = try connection(to: deployment.url) { $0.useTLS(RedisTLS(caFile: material.caFile)) }
        #expect(try await trusting.send("PING") == .status("PONG"))
        await deployment.stop()
    }
}
