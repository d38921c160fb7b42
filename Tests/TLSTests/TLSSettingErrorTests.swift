import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// TLS settings a process cannot use, and servers it must not trust, stop every executable at
/// start: exit 2, one line on stderr saying what to fix. A password in the URL is never printed.
@Suite("TLS: settings to fix, and secrets")
struct TLSSettingErrorTests {
    /// One way to run a program to its end (a service that starts instead of stopping is
    /// ended by the timeout, and the test fails).
    struct Program: Sendable, CustomTestStringConvertible {
        let name: String
        /// A producer command, whose stderr is the one line (a service may announce itself first).
        var isCommand: Bool { !name.contains("worker") && !name.contains("serve") && !name.contains("telegram") }
        let run: @Sendable (TLSWorld, [String: String]) async throws -> CommandResult
        var testDescription: String { name }
    }

    static let programs: [Program] = [
        Program(name: "imagequeue queues") { world, environment in
            try await world.run(["queues", "--json"], environment: environment, timeout: 30)
        },
        Program(name: "imagequeue enqueue") { world, environment in
            try await world.run(["enqueue", "--model", "flux", "--user", "alice", "a fox"], environment: environment, timeout: 30)
        },
        Program(name: "imagequeue worker") { world, environment in
            try await world.run(["worker", "--models", "flux", "--backend", "placeholder", "--output-dir", try world.cli.outputDirectory()],
                                environment: environment, timeout: 30)
        },
        Program(name: "imagequeue-worker") { world, environment in
            try await world.cli.runStandaloneWorker(["--models", "flux", "--backend", "placeholder",
                                                     "--output-dir", try world.cli.outputDirectory()],
                                                    environment: world.tls.merging(environment) { $1 }, timeout: 30)
        },
        Program(name: "imagequeue serve") { world, environment in
            try await world.run(["serve", "--host", "127.0.0.1", "--port", "\(try RedisServer.freePort())"],
                                environment: ["IMAGEQUEUE_API_TOKEN": "token-for-the-tls-test"].merging(environment) { $1 },
                                timeout: 30)
        },
        Program(name: "imagequeue telegram") { world, environment in
            // Nothing listens on port 9: the front must stop at its Redis check, before any Bot API call.
            try await world.run(["telegram"], environment: ["TELEGRAM_BOT_TOKEN": "123456:tls-test-token",
                                                             "TELEGRAM_API_URL": "http://127.0.0.1:9"].merging(environment) { $1 },
                                timeout: 30)
        },
    ]

    @Test("bad TLS settings: a CA file beside redis://, a certificate without its key (or the reverse), a file that is not there", arguments: programs)
    func badSettings(_ program: Program) async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let tlsWorld = try TLSWorld(material: material, server: server, url: server.tlsURL, label: "te",
                                    tls: TLSWorld.settings(material, clientCertificate: false))
        defer { tlsWorld.cli.removeOutputDirectory() }
        // A plaintext URL at the plaintext shared server, which would otherwise work.
        let plainWorld = try TLSWorld(material: material, server: nil, url: try TestEnvironment.redisURL(), label: "te",
                                      tls: TLSWorld.settings(material, clientCertificate: false))
        defer { plainWorld.cli.removeOutputDirectory() }
        let missing = "\(material.directory)/no-such-ca.crt"
        let cases: [(String, TLSWorld, [String: String], [String])] = [
            ("IMAGEQUEUE_REDIS_TLS_CA_FILE with redis://", plainWorld, [:], ["IMAGEQUEUE_REDIS_TLS_CA_FILE", "rediss://"]),
            ("IMAGEQUEUE_REDIS_TLS_CERT_FILE without KEY_FILE", tlsWorld,
             ["IMAGEQUEUE_REDIS_TLS_CERT_FILE": material.clientCertificate], ["IMAGEQUEUE_REDIS_TLS_KEY_FILE"]),
            ("IMAGEQUEUE_REDIS_TLS_KEY_FILE without CERT_FILE", tlsWorld,
             ["IMAGEQUEUE_REDIS_TLS_KEY_FILE": material.clientKey], ["IMAGEQUEUE_REDIS_TLS_CERT_FILE"]),
            ("a CA file that does not exist", tlsWorld, ["IMAGEQUEUE_REDIS_TLS_CA_FILE": missing], ["IMAGEQUEUE_REDIS_TLS_CA_FILE"]),
        ]
        for (what, world, environment, texts) in cases {
            let result = try await program.run(world, environment)
            expectSettingError(result, "\(program.name), \(what)", containing: texts, onlyLine: program.isCommand)
        }
        // Nothing reached either server's queue.
        #expect(try await tlsWorld.redis(["EXISTS", "\(tlsWorld.cli.prefix):{flux}:pending"]) == "0")
    }

    @Test("servers not to trust: an unknown CA, an expired certificate, another host's; one that wants a client certificate; IMAGEQUEUE_REDIS_TLS_SERVER_NAME names the other host", arguments: programs)
    func untrustedServers(_ program: Program) async throws {
        let material = try await TLSMaterial.shared()
        let good = try await RedisServer.launchTLS(material: material)
        let expired = try await RedisServer.launchTLS(material: material, certificate: material.expiredServerCertificate,
                                                      key: material.expiredServerKey)
        let otherHost = try await RedisServer.launchTLS(material: material, certificate: material.otherHostServerCertificate,
                                                        key: material.otherHostServerKey)
        let mutual = try await RedisServer.launchTLS(material: material, authClients: true)
        func world(_ server: RedisServer) throws -> TLSWorld {
            try TLSWorld(material: material, server: server, url: server.tlsURL, label: "tu",
                         tls: TLSWorld.settings(material, clientCertificate: false))
        }
        let cases: [(String, TLSWorld, [String: String], [String])] = [
            ("no CA file (the system's store does not know the test CA)", try world(good),
             ["IMAGEQUEUE_REDIS_TLS_CA_FILE": ""], ["unknown CA"]),
            ("another CA's file", try world(good), ["IMAGEQUEUE_REDIS_TLS_CA_FILE": material.unknownCAFile], ["unknown CA"]),
            ("an expired certificate", try world(expired), [:], ["expired"]),
            ("a certificate for other.example", try world(otherHost), [:], ["not for 127.0.0.1"]),
            ("a server that asks for a client certificate, none given", try world(mutual), [:], ["client certificate"]),
        ]
        defer { for (_, world, _, _) in cases { world.cli.removeOutputDirectory() } }
        for (what, world, environment, texts) in cases {
            let result = try await program.run(world, environment)
            expectSettingError(result, "\(program.name), \(what)", containing: texts, onlyLine: program.isCommand)
        }
        // The name the certificate lists, given as the server name, is accepted.
        let named = try world(otherHost)
        let result = try await named.run(["queues", "--json"], environment: ["IMAGEQUEUE_REDIS_TLS_SERVER_NAME": "other.example"])
        #expect(result.status == 0, "with IMAGEQUEUE_REDIS_TLS_SERVER_NAME=other.example: \(result.stderr)")
        #expect((try? ParsedJSON.parse(result.stdout))?["flux"]?["pending"] == .integer(0), "\(result.stdout)")
    }

    static let password = "pw-SECRET-123"
    static let wrongPassword = "pw-SECRET-WRONG-456"

    @Test("a password in a rediss:// URL never appears in any output: not when it works, not in any failure")
    func passwordNeverPrinted() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, extraArguments: ["--requirepass", Self.password])
        let tls = TLSWorld.settings(material, clientCertificate: false)
        func world(_ url: String) throws -> TLSWorld {
            try TLSWorld(material: material, server: server, url: url, label: "tp", tls: tls)
        }
        let right = try world("rediss://:\(Self.password)@127.0.0.1:\(server.port)")
        defer { right.cli.removeOutputDirectory() }
        var outputs: [(String, String)] = []

        // It works: the CLI, and a worker logging at debug level that completes a job.
        let worker = try right.startStandaloneWorker(["--models", "flux", "--backend", "placeholder",
                                                      "--output-dir", try right.cli.outputDirectory(), "--id", "\(right.cli.prefix)-w1"],
                                                     environment: ["IMAGEQUEUE_LOG_LEVEL": "debug"])
        let enqueued = try await right.run(["enqueue", "--json", "--model", "flux", "--user", "alice", "--no-enhance", "a secret garden"])
        outputs.append(("enqueue", enqueued.stdout + enqueued.stderr))
        try #require(enqueued.status == 0, "enqueue with the password: exit \(enqueued.status), stderr: \(enqueued.stderr)")
        let id = try #require(try ParsedJSON.parse(enqueued.stdout)["id"]?.string)
        let done = try await right.waitForStatus(id, "completed")
        #expect(done["status"]?.string == "completed", "\(done)")
        let withUser = "rediss://default:\(Self.password)@127.0.0.1:\(server.port)"
        for command in [["status", "--json", id], ["queues", "--json"], ["workers", "--json"]] {
            let result = try await right.cli.runExactly(command + ["--redis", withUser, "--prefix", right.cli.prefix], environment: tls)
            #expect(result.status == 0, "\(command[0]) with default:password: \(result.stderr)")
            outputs.append((command[0], result.stdout + result.stderr))
        }
        // The URL from IMAGEQUEUE_REDIS_URL rather than --redis.
        let fromEnvironment = try await right.cli.runExactly(["queues", "--json", "--prefix", right.cli.prefix],
                                                             environment: tls.merging(["IMAGEQUEUE_REDIS_URL": right.cli.redisURL]) { $1 })
        #expect(fromEnvironment.status == 0, "queues with IMAGEQUEUE_REDIS_URL: \(fromEnvironment.stderr)")
        outputs.append(("queues (IMAGEQUEUE_REDIS_URL)", fromEnvironment.stdout + fromEnvironment.stderr))
        worker.send(SIGTERM)
        #expect(try await worker.waitForExit() == .exited(0), "the worker's exit")
        outputs.append(("imagequeue-worker at debug level", worker.output))

        // Failures, each with a password in the URL, each a setting to fix: exit 2.
        let wrong = try world("rediss://:\(Self.wrongPassword)@127.0.0.1:\(server.port)")
        let plain = try world("redis://:\(Self.password)@127.0.0.1:\(server.port)")
        defer { for failing in [wrong, plain] { failing.cli.removeOutputDirectory() } }
        let failures: [(String, TLSWorld, [String: String])] = [
            ("a wrong password", wrong, [:]),
            ("no CA file", right, ["IMAGEQUEUE_REDIS_TLS_CA_FILE": ""]),
            ("a CA file that does not exist", right, ["IMAGEQUEUE_REDIS_TLS_CA_FILE": "\(material.directory)/missing.crt"]),
            ("a CA file beside redis://", plain, [:]),
            ("a certificate without its key", right, ["IMAGEQUEUE_REDIS_TLS_CERT_FILE": material.clientCertificate]),
        ]
        for (what, failing, environment) in failures {
            for program in Self.programs {
                let result = try await program.run(failing, environment.merging(["IMAGEQUEUE_LOG_LEVEL": "debug"]) { $1 })
                #expect(result.status == 2, "\(program.name), \(what): exit \(result.status)")
                outputs.append(("\(program.name), \(what)", result.stdout + result.stderr))
            }
        }

        for (source, text) in outputs {
            for secret in [Self.password, Self.wrongPassword, "SECRET"] {
                let shown = text.contains(secret)  // not inside #expect, which would print the whole text
                #expect(!shown, "\(source) shows a password: \(context(of: secret, in: text))")
            }
        }
        // The failures did say something.
        #expect(outputs.filter { !$0.1.isEmpty }.count == outputs.count, "every run printed something")
    }
}
