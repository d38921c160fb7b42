import Foundation
import RedisClient
import Testing
import TestSupport

/// Passwords, ACL users, database selection and unix sockets, each against a private
/// redis-server configured for it.
@Suite(.runsClients) struct RedisAuthenticationTests {
    static let password = "s3cret-pw"

    /// A server that requires `password`.
    static func protectedServer(_ extraArguments: [String] = []) async throws -> RedisServer {
        try await privateRedisServer(["--requirepass", password] + extraArguments)
    }

    @Test func wrongPasswordIsAnAuthenticationErrorThatHidesThePassword() async throws {
        let server = try await Self.protectedServer()
        let wrong = "wrong-pw-4711"
        let redis = try connection(to: "redis://:\(wrong)@127.0.0.1:\(server.port)")
        let error = await redisError { try await redis.send("PING") }
        #expect(error?.kind == .authentication)
        #expect(error?.isTransient == false)
        for text in [error?.description ?? "", error?.message ?? ""] {
            #expect(!text.contains(wrong))
            #expect(!text.contains(Self.password))
        }
    }

    @Test func wrongPasswordOfAnACLUserHidesThePassword() async throws {
        let server = try await Self.protectedServer()
        let wrong = "wrong-user-pw-815"
        let redis = try connection(to: "redis://default:\(wrong)@127.0.0.1:\(server.port)")
        let error = await redisError { try await redis.send("PING") }
        #expect(error?.kind == .authentication)
        #expect(error?.description.contains(wrong) == false)
        #expect(error?.message.contains(wrong) == false)
    }

    @Test func missingPasswordGivesNOAUTH() async throws {
        let server = try await Self.protectedServer()
        let redis = try connection(to: server.url)
        let error = await redisError { try await redis.send("GET", "k") }
        #expect(error?.kind == .server)
        #expect(error?.serverCode == "NOAUTH")
    }

    @Test func rightPasswordWorks() async throws {
        let server = try await Self.protectedServer()
        let redis = try connection(to: "redis://:\(Self.password)@127.0.0.1:\(server.port)")
        #expect(try await redis.send("PING") == .status("PONG"))
        #expect(try await redis.send("ACL", "WHOAMI") == bulk("default"))
        #expect(!redis.endpointDescription.contains(Self.password))
    }

    @Test func percentEncodedPasswordWorks() async throws {
        let server = try await privateRedisServer(["--requirepass", "p@ss:w/rd?"])
        let redis = try connection(to: "redis://:p%40ss%3Aw%2Frd%3F@127.0.0.1:\(server.port)")
        #expect(try await redis.send("PING") == .status("PONG"))
    }

    @Test func aclUserWorks() async throws {
        let server = try await Self.protectedServer()
        let admin = try connection(to: "redis://:\(Self.password)@127.0.0.1:\(server.port)")
        #expect(try await admin.send("ACL", "SETUSER", "worker", "on", ">wpass", "~*", "&*", "+@all") == .status("OK"))

        let worker = try connection(to: "redis://worker:wpass@127.0.0.1:\(server.port)")
        #expect(try await worker.send("ACL", "WHOAMI") == bulk("worker"))
        let key = TestEnvironment.uniquePrefix("rc-acl")
        #expect(try await worker.send("SET", key, "by-worker") == .status("OK"))
        #expect(try await admin.send("GET", key) == bulk("by-worker"))

        let impostor = try connection(to: "redis://worker:not-wpass@127.0.0.1:\(server.port)")
        let error = await redisError { try await impostor.send("PING") }
        #expect(error?.kind == .authentication)
        #expect(error?.message.contains("not-wpass") == false)
    }

    @Test func databaseIsSelected() async throws {
        let server = try await Self.protectedServer()
        let base = "redis://:\(Self.password)@127.0.0.1:\(server.port)"
        let database3 = try connection(to: base + "/3")
        let database0 = try connection(to: base)
        let key = TestEnvironment.uniquePrefix("rc-db")
        #expect(try await database3.send("SET", key, "in-3") == .status("OK"))
        #expect(try await database3.send("GET", key) == bulk("in-3"))
        #expect(try await database0.send("GET", key) == .null)
        #expect(try await database0.send("SELECT", 3) == .status("OK"))
        #expect(try await database0.send("GET", key) == bulk("in-3"))
    }

    @Test func databaseIsSelectedAgainAfterReconnect() async throws {
        let server = try await privateRedisServer()
        let redis = try connection(to: server.url + "/3") { $0.reconnectDeadline = .seconds(5) }
        let other = try connection(to: server.url + "/3")
        let key = TestEnvironment.uniquePrefix("rc-db-again")
        try await redis.send("SET", key, "1")
        // CLIENT KILL breaks only this connection; the server keeps its data.
        let myID = try #require(try await redis.send("CLIENT", "ID").int)
        #expect(try await other.send("CLIENT", "KILL", "ID", Int(myID)) == .integer(1))
        _ = try? await redis.send("PING")  // may meet the killed socket
        #expect(try await redis.send("GET", key) == bulk("1"))
    }

    @Test func databaseOutOfRangeIsRefused() async throws {
        let server = try await privateRedisServer()
        let redis = try connection(to: server.url + "/99")
        let error = await redisError { try await redis.send("PING") }
        #expect(error?.kind == .authentication)
        #expect(error?.message.contains("database") == true)
    }

    @Test func unixSocketIsReachable() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-rc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socketPath = directory.appendingPathComponent("r.sock").path
        let server = try await privateRedisServer(["--unixsocket", socketPath, "--unixsocketperm", "700"])

        let overSocket = try connection(to: "unix://\(socketPath)")
        #expect(try await overSocket.send("PING") == .status("PONG"))
        let key = TestEnvironment.uniquePrefix("rc-unix")
        try await overSocket.send("SET", key, "via-socket")
        // Same server: visible over TCP, and the connection really is a unix one.
        let overTCP = try connection(to: server.url)
        #expect(try await overTCP.send("GET", key) == bulk("via-socket"))
        let info = try await overSocket.send("CLIENT", "INFO").string ?? ""
        #expect(info.contains("addr=\(socketPath)") || info.contains("laddr=\(socketPath)"))
    }

    @Test func unixSocketWithPasswordAndDatabase() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-rc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socketPath = directory.appendingPathComponent("r.sock").path
        let server = try await Self.protectedServer(["--unixsocket", socketPath, "--unixsocketperm", "700"])

        let redis = try connection(to: "unix://\(socketPath)?db=2&password=\(Self.password)")
        #expect(!redis.endpointDescription.contains(Self.password))
        let key = TestEnvironment.uniquePrefix("rc-unix-db")
        try await redis.send("SET", key, "in-2")
        let overTCP = try connection(to: "redis://:\(Self.password)@127.0.0.1:\(server.port)/2")
        #expect(try await overTCP.send("GET", key) == bulk("in-2"))

        let wrong = try connection(to: "unix://\(socketPath)?password=nope-nope")
        let error = await redisError { try await wrong.send("PING") }
        #expect(error?.kind == .authentication)
        #expect(error?.message.contains("nope-nope") == false)
    }
}
