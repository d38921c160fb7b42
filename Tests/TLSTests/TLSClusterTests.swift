import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The release executables on a three-master Redis Cluster that speaks TLS only, with mutual
/// TLS (`TLSCluster`), through `rediss+cluster://`.
@Suite("TLS: a Redis Cluster over rediss+cluster://")
struct TLSClusterTests {
    @Test("the CLI enqueues jobs for flux and sdxl, imagequeue-worker completes them, queues --json counts them completed")
    func jobsOnATLSCluster() async throws {
        let material = try await TLSMaterial.shared()
        let cluster = try await TLSCluster.start(material: material)
        do {
            try await Self.runJobs(on: cluster, material: material)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
        for port in cluster.ports {
            #expect(!RedisServer.canConnectForTests(port: port), "node \(port) still listens after stop()")
        }
    }

    private static func runJobs(on cluster: TLSCluster, material: TLSMaterial) async throws {
        let world = try TLSWorld(material: material, server: nil, url: cluster.url, label: "tk",
                                 tls: TLSWorld.settings(material, clientCertificate: true))
        defer { world.cli.removeOutputDirectory() }
        let models = ["flux", "sdxl"]
        var jobs: [String: [String]] = [:]
        for model in models {
            for index in 1...3 { jobs[model, default: []].append(try await world.enqueue("\(model) job \(index) on the tls cluster", model: model)) }
        }
        let queued = try await world.json(["queues", "--json"])
        for model in models { #expect(queued[model]?["pending"] == .integer(3), "\(model): \(queued)") }

        let worker = try world.startStandaloneWorker(["--models", models.joined(separator: ","), "--backend", "placeholder",
                                                      "--output-dir", try world.cli.outputDirectory(), "--id", "\(world.cli.prefix)-w1"],
                                                     environment: ["IMAGEQUEUE_PLACEHOLDER_SIZE": "64"])
        for (model, ids) in jobs {
            for id in ids {
                let done = try await world.waitForStatus(id, "completed", timeout: 90)
                #expect(done["status"]?.string == "completed", "\(model) \(id): \(done)\nworker output:\n\(worker.output)")
            }
        }
        let queues = try await world.json(["queues", "--json"])
        for model in models {
            #expect(queues[model]?["pending"] == .integer(0), "\(model): \(queues)")
            #expect(queues[model]?["active"] == .integer(0), "\(model): \(queues)")
            #expect(queues[model]?["completed_total"] == .integer(3), "\(model): \(queues)")
        }
        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()
        #expect(ended == .exited(0), "worker output:\n\(worker.output)")

        // The two models' keys are on different masters: the commands above spanned nodes.
        var holding = 0
        for port in cluster.ports {
            let keys = try await redisCLI(port: port, material: material, ["DBSIZE"])
            if (Int(keys) ?? 0) > 0 { holding += 1 }
        }
        #expect(holding >= 2, "keys on \(holding) of the 3 nodes")
    }
}
