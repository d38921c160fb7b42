import Foundation
import Testing
import TestSupport

@Suite("Redis unreachable or refusing")
struct ConnectionErrorTests {
    /// One command of each kind: a script call, a pipeline of reads, a single read.
    static let commands = [["enqueue", "--model", "flux", "--user", "alice", "a fox"],
                           ["queues", "--json"],
                           ["concurrency", "--model", "flux"]]

    @Test("nothing listening: exit 1 with one line, after the CLI's reconnect deadline", arguments: commands)
    func unreachable(_ arguments: [String]) async throws {
        let cli = try CLI(redisURL: "redis://127.0.0.1:\(try RedisServer.freePort())")
        // The CLI gives up after 3 s of reconnecting; the timeout only stops a hang.
        let result = try await cli.run(arguments, timeout: 30)
        expectOneLineFailure(result, status: 1)
    }

    @Test("a wrong password: exit 2 (a setting to fix) with one line, and no password is ever printed")
    func wrongPassword() async throws {
        let server = try await RedisServer.launch(extraArguments: ["--requirepass", "pw-secret-123"])
        let secrets = ["pw-secret-123", "pw-wrong-456"]
        for url in ["redis://:pw-wrong-456@127.0.0.1:\(server.port)", "redis://default:pw-wrong-456@127.0.0.1:\(server.port)"] {
            let cli = try CLI(redisURL: url)
            for arguments in Self.commands {
                let result = try await cli.run(arguments)
                expectOneLineFailure(result, status: 2)
                for secret in secrets {
                    #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret), "\(url): \(result.stderr)")
                }
            }
        }
    }

    @Test("no password for a server that requires one: exit 1 with one line", arguments: commands)
    func missingPassword(_ arguments: [String]) async throws {
        let server = try await RedisServer.launch(extraArguments: ["--requirepass", "pw-secret-123"])
        let result = try await CLI(redisURL: server.url).run(arguments)
        expectOneLineFailure(result, status: 1)
        #expect(!result.stdout.contains("pw-secret-123") && !result.stderr.contains("pw-secret-123"))
    }

    @Test("the right password in --redis works, and is not printed")
    func rightPassword() async throws {
        let server = try await RedisServer.launch(extraArguments: ["--requirepass", "pw-secret-123"])
        let cli = try CLI(redisURL: "redis://:pw-secret-123@127.0.0.1:\(server.port)")
        let enqueued = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "--json", "a fox"])
        #expect(enqueued.status == 0, "stderr: \(enqueued.stderr)")
        let id = try #require(try ParsedJSON.parse(enqueued.stdout)["id"]?.string)
        let status = try await cli.run(["status", id, "--json"])
        #expect(status.status == 0, "stderr: \(status.stderr)")
        for output in [enqueued.stdout, enqueued.stderr, status.stdout, status.stderr] {
            #expect(!output.contains("pw-secret-123"))
        }
    }
}
