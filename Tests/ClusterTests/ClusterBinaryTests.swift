import Foundation
import RedisClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The executables under test (release builds in `Tests/run.sh`, as users run them) against
/// a three-master cluster where a pipeline's keys live on several nodes: `flux` and `sdxl`
/// hash to slots of different masters. A Swift optimizer defect once made these pipelines
/// crash or read wrong replies in release builds only (docs/CLUSTER.md).
@Suite("executables on a Redis Cluster: pipelines across nodes", .runsClients)
struct ClusterBinaryTests {
    @Test("imagequeue-worker and imagequeue worker, started 20 times on a cluster, register, run jobs and stop cleanly")
    func workerStartsNeverCrash() async throws {
        let cluster = try await LocalCluster.shared()
        let cli = try QueueCLI(redisURL: cluster.url, label: "cb")
        defer { cli.removeOutputDirectory() }
        for start in 1...20 {
            let id = "\(cli.prefix)-w\(start)"
            let arguments = ["--models", "flux,sdxl", "--backend", "placeholder", "--output-dir", try cli.outputDirectory(),
                             "--id", id]
            // Even starts run the lean worker, odd ones the whole binary's `worker`.
            let worker = start % 2 == 0 ? try cli.startStandaloneWorker(arguments) : try cli.startWorker(arguments)
            // Registration is the first multi-node pipeline a worker sends.
            try await waitUntil("worker \(id) is registered (start \(start))", timeout: 30) {
                if !worker.isRunning { return true }
                let workers = try? await cli.json(["workers", "--json"])
                return workers?.array?.contains { $0["id"]?.string == id } ?? false
            }
            #expect(worker.isRunning, "start \(start): the worker ended: \(String(describing: worker.termination))\n\(worker.output)")
            guard worker.isRunning else { return }
            let jobs = [try await cli.enqueue("start \(start) flux", model: "flux", enhance: false),
                        try await cli.enqueue("start \(start) sdxl", model: "sdxl", enhance: false)]
            for job in jobs {
                let done = try await cli.waitForStatus(job, "completed")
                #expect(done["status"]?.string == "completed", "start \(start): \(done)\n\(worker.output)")
            }
            worker.send(SIGTERM)
            let ended = try await worker.waitForExit()
            #expect(ended == .exited(0), "start \(start): \(ended)\n\(worker.output)")
        }
    }

    @Test("queues --json reports what the nodes hold: pending, active and completed per model")
    func queuesAgreeWithTheNodes() async throws {
        let cluster = try await LocalCluster.shared()
        let cli = try QueueCLI(redisURL: cluster.url, label: "cq")
        defer { cli.removeOutputDirectory() }
        // sdxl: two jobs completed. flux: one job held running (a long placeholder delay), two waiting.
        let sdxl = [try await cli.enqueue("sdxl one", model: "sdxl", enhance: false),
                    try await cli.enqueue("sdxl two", model: "sdxl", enhance: false)]
        let fast = try cli.startStandaloneWorker(["--models", "sdxl", "--backend", "placeholder",
                                                  "--output-dir", try cli.outputDirectory(), "--id", "\(cli.prefix)-fast"])
        for job in sdxl { _ = try await cli.waitForStatus(job, "completed") }
        fast.send(SIGTERM)
        #expect(try await fast.waitForExit() == .exited(0), "\(fast.output)")
        var flux: [String] = []
        for index in 1...3 { flux.append(try await cli.enqueue("flux \(index)", model: "flux", enhance: false)) }
        let slow = try cli.startStandaloneWorker(["--models", "flux", "--backend", "placeholder",
                                                  "--output-dir", try cli.outputDirectory(), "--id", "\(cli.prefix)-slow"],
                                                 environment: ["IMAGEQUEUE_PLACEHOLDER_DELAY": "600"])
        defer { slow.send(SIGKILL) }
        _ = try await cli.waitForStatus(flux[0], "generating")

        let held = try await Self.nodeCounts(cluster, prefix: cli.prefix)
        #expect(held["flux"] == Counts(pending: 2, active: 1, completed: 0), "\(held)")
        #expect(held["sdxl"] == Counts(pending: 0, active: 0, completed: 2), "\(held)")
        let queues = try await cli.json(["queues", "--json"])
        for (model, counts) in held {
            #expect(queues[model]?["pending"] == .integer(Int64(counts.pending)), "\(model): \(queues)")
            #expect(queues[model]?["active"] == .integer(Int64(counts.active)), "\(model): \(queues)")
            #expect(queues[model]?["completed_total"] == .integer(Int64(counts.completed)), "\(model): \(queues)")
        }
    }

    @Test("a plain redis:// URL at a Cluster node: the CLI, a worker, serve and telegram stop at start with one line, exit 2")
    func plainURLAtAClusterNode() async throws {
        let cluster = try await LocalCluster.shared()
        let node = cluster.nodeURL(cluster.ports[1])
        let cli = try QueueCLI(redisURL: node, label: "cn")
        defer { cli.removeOutputDirectory() }
        let worker = ["--models", "flux,sdxl", "--backend", "placeholder", "--output-dir", try cli.outputDirectory()]
        let runs: [(String, CommandResult)] = [
            ("enqueue", try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "a fox"])),
            ("queues", try await cli.run(["queues", "--json"])),
            ("imagequeue worker", try await cli.run(["worker"] + worker)),
            ("imagequeue-worker", try await cli.runStandaloneWorker(worker)),
            ("serve", try await cli.run(["serve", "--port", "\(try RedisServer.freePort())"],
                                        environment: ["IMAGEQUEUE_API_TOKEN": "token-for-the-cluster-test"])),
            ("telegram", try await cli.run(["telegram"], environment: ["TELEGRAM_BOT_TOKEN": "123456:cluster-test",
                                                                       "TELEGRAM_API_URL": "http://127.0.0.1:9"])),
        ]
        let advice = "is a Redis Cluster node: use redis+cluster://[user:password@]127.0.0.1:\(cluster.ports[1])"
        for (what, result) in runs {
            #expect(result.status == 2, "\(what): \(result.stderr)")
            let lines = result.stderr.split(separator: "\n").filter { $0.contains("Redis Cluster node") }
            #expect(lines.count == 1 && lines[0].contains(advice), "\(what): \(result.stderr)")
        }
    }

    @Test("a redis+cluster:// URL at a standalone server: one line saying so, exit 2")
    func clusterURLAtAStandaloneServer() async throws {
        let standalone = try TestEnvironment.redisURL()
        let cli = try QueueCLI(redisURL: standalone.replacingOccurrences(of: "redis://", with: "redis+cluster://"), label: "cs")
        let result = try await cli.run(["queues"])
        #expect(result.status == 2, "\(result.stderr)")
        // Not the server's raw "cluster support disabled" after the reconnect deadline's retries.
        #expect(result.stderr.contains("is not a Redis Cluster node") && result.stderr.contains("use redis://"), "\(result.stderr)")
    }

    struct Counts: Equatable, CustomStringConvertible {
        var pending = 0, active = 0, completed = 0
        var description: String { "pending \(pending), active \(active), completed \(completed)" }
    }

    /// Each model's counts read straight from every node, single-node: a node that does not
    /// own the slot answers MOVED and adds nothing.
    static func nodeCounts(_ cluster: LocalCluster, prefix: String) async throws -> [String: Counts] {
        var counts: [String: Counts] = ["flux": Counts(), "sdxl": Counts()]
        for port in cluster.ports {
            let node = runInTest(RedisConnection(configuration: try RedisConfiguration(url: cluster.nodeURL(port))))
            defer { node.close() }
            for model in ["flux", "sdxl"] {
                let base = "\(prefix):{\(model)}:"
                let replies = try await node.pipeline([RedisCommand("ZCARD", base + "pending"), RedisCommand("ZCARD", base + "active"),
                                                       RedisCommand("HGET", base + "meta", "completed_total")])
                if case .error = replies[0] { continue }
                counts[model]!.pending += Int(replies[0].int ?? 0)
                counts[model]!.active += Int(replies[1].int ?? 0)
                counts[model]!.completed += Int(replies[2].string.flatMap(Int.init) ?? 0)
            }
        }
        return counts
    }
}
