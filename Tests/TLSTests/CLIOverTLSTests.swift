import Foundation
import Testing
import TestSupport

/// The producer commands of the release `imagequeue` over `rediss://`, each test on a TLS-only
/// redis-server of its own.
@Suite("TLS: the CLI over rediss://")
struct CLIOverTLSTests {
    @Test("enqueue, status and queues --json over TLS with IMAGEQUEUE_REDIS_TLS_CA_FILE; the job is in the server")
    func producerCommandsOverTLS() async throws {
        let world = try await TLSWorld.start(label: "tc")
        let flux = try await world.enqueue("a lighthouse over tls", model: "flux")
        let sdxl = try await world.enqueue("a fox over tls", model: "sdxl")
        #expect(flux.hasPrefix("flux-") && sdxl.hasPrefix("sdxl-"), "\(flux) \(sdxl)")

        let status = try await world.status(flux)
        #expect(status["id"]?.string == flux, "\(status)")
        #expect(status["status"]?.string == "queued", "\(status)")
        #expect(status["prompt"]?.string == "a lighthouse over tls", "\(status)")
        #expect(status["position"] == .integer(1), "\(status)")

        let queues = try await world.json(["queues", "--json"])
        #expect(queues["flux"]?["pending"] == .integer(1), "\(queues)")
        #expect(queues["sdxl"]?["pending"] == .integer(1), "\(queues)")
        #expect(queues["flux"]?["active"] == .integer(0), "\(queues)")

        // Read back from the server itself, over TLS with redis-cli.
        let pending = try await world.redis(["ZRANGE", "\(world.cli.prefix):{flux}:pending", "0", "-1"])
        #expect(pending == flux, "the flux queue in Redis: \(pending)")
    }

    @Test("mutual TLS: with IMAGEQUEUE_REDIS_TLS_CERT_FILE and KEY_FILE the commands work; without, or with a certificate of another CA, exit 2 with one line about the client certificate")
    func mutualTLS() async throws {
        let world = try await TLSWorld.start(label: "tm", authClients: true)
        let id = try await world.enqueue("a heron with a client certificate")
        #expect(try await world.status(id)["status"]?.string == "queued")
        #expect(try await world.json(["queues", "--json"])["flux"]?["pending"] == .integer(1))

        let withoutCertificate = ["IMAGEQUEUE_REDIS_TLS_CERT_FILE": "", "IMAGEQUEUE_REDIS_TLS_KEY_FILE": ""]  // empty = unset
        let otherCA = ["IMAGEQUEUE_REDIS_TLS_CERT_FILE": world.material.untrustedClientCertificate,
                       "IMAGEQUEUE_REDIS_TLS_KEY_FILE": world.material.untrustedClientKey]
        let commands = [["enqueue", "--model", "flux", "--user", "alice", "--no-enhance", "refused"],
                        ["status", "--json", id], ["queues", "--json"]]
        for (what, environment) in [("no client certificate", withoutCertificate), ("a client certificate of an unknown CA", otherCA)] {
            for command in commands {
                let result = try await world.run(command, environment: environment)
                expectSettingError(result, "\(what): \(command[0])", containing: ["client certificate"])
            }
        }
        // The refused enqueues wrote nothing.
        #expect(try await world.json(["queues", "--json"])["flux"]?["pending"] == .integer(1))
    }
}
