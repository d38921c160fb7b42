import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The whole queue against a three-master Redis Cluster, with no change to the queue logic:
/// the real `imagequeue` binary given a `redis+cluster://` URL, placeholder images.
@Suite("queue on a Redis Cluster", .runsClients)
struct ClusterFlowTests {
    private func makeCLI() async throws -> QueueCLI {
        let cluster = try await LocalCluster.shared()
        return try QueueCLI(redisURL: cluster.url, label: "cl")
    }

    private func workerArguments(_ cli: QueueCLI, id: String, models: String = "flux,sdxl", lease: Int = 30) throws -> [String] {
        ["--models", models, "--backend", "placeholder", "--lease-seconds", "\(lease)",
         "--output-dir", try cli.outputDirectory(), "--id", "\(cli.prefix)-\(id)"]
    }

    private func stop(_ worker: SpawnedProcess) async throws {
        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()
        #expect(ended == .exited(0), "worker output:\n\(worker.output)")
    }

    @Test("enqueue, a worker completes the job, watch sees every event through to completed")
    func endToEnd() async throws {
        let cli = try await makeCLI()
        defer { cli.removeOutputDirectory() }
        let id = try await cli.enqueue("a lighthouse in fog", model: "sdxl", enhance: false)
        let watch = try cli.start(["watch", id, "--json", "--redis", cli.redisURL, "--prefix", cli.prefix])
        // The first line is the stored state, printed after subscribing: no later event is missed.
        #expect(await watch.waitForOutput(containing: "\"queued\""), "watch output:\n\(watch.output)")
        let worker = try cli.startWorker(workerArguments(cli, id: "w"))
        let done = try await cli.waitForStatus(id, "completed")
        #expect(done["status"]?.string == "completed", "\(done)\nworker output:\n\(worker.output)")
        #expect(done["worker"]?.string == "\(cli.prefix)-w")
        #expect(try await watch.waitForExit() == .exited(0), "watch output:\n\(watch.output)")
        let statuses = try watch.stdout.split(separator: "\n").map { try ParsedJSON.parse(String($0))["status"]?.string ?? "" }
        #expect(statuses.first == "queued", "\(statuses)")
        #expect(statuses.contains("generating"), "\(statuses)")
        #expect(statuses.last == "completed", "\(statuses)")
        let queues = try await cli.json(["queues", "--json"])
        #expect(queues["sdxl"]?["pending"] == .integer(0), "\(queues)")
        #expect(queues["sdxl"]?["active"] == .integer(0), "\(queues)")
        let workers = try await cli.json(["workers", "--json"])
        #expect(workers.array?.compactMap { $0["id"]?.string } == ["\(cli.prefix)-w"], "\(workers)")
        try await stop(worker)
    }

    @Test("at concurrency 1, two workers run one model's jobs one at a time, in enqueue order")
    func fifoAcrossTwoWorkers() async throws {
        let cli = try await makeCLI()
        defer { cli.removeOutputDirectory() }
        var ids: [String] = []
        for index in 1...6 { ids.append(try await cli.enqueue("fifo job \(index)", model: "flux", enhance: false)) }
        let slow = ["IMAGEQUEUE_PLACEHOLDER_DELAY": "0.2"]
        let workers = [try cli.startWorker(workerArguments(cli, id: "w1", models: "flux"), environment: slow),
                       try cli.startWorker(workerArguments(cli, id: "w2", models: "flux"), environment: slow)]
        var done: [ParsedJSON] = []
        for id in ids { done.append(try await cli.waitForStatus(id, "completed")) }
        for worker in workers { try await stop(worker) }

        #expect(done.allSatisfy { $0["status"]?.string == "completed" }, "\(done)")
        for (earlier, later) in zip(done, done.dropFirst()) {
            let finished = try #require(earlier["finished_at"]?.integer)
            let started = try #require(later["started_at"]?.integer)
            #expect(finished <= started, "\(later["id"]?.string ?? "") started before \(earlier["id"]?.string ?? "") finished")
        }
        let ranOn = Set(done.compactMap { $0["worker"]?.string })
        #expect(ranOn.isSubset(of: ["\(cli.prefix)-w1", "\(cli.prefix)-w2"]), "\(ranOn)")
    }

    @Test("a limit of 2 holds across two workers that could each run 2")
    func concurrencyLimitAcrossWorkers() async throws {
        let cli = try await makeCLI()
        defer { cli.removeOutputDirectory() }
        let set = try await cli.run(["concurrency", "--model", "sdxl", "2"])
        try #require(set.status == 0, "\(set.stderr)")
        var ids: [String] = []
        for index in 1...8 { ids.append(try await cli.enqueue("limited job \(index)", model: "sdxl", enhance: false)) }
        let slow = ["IMAGEQUEUE_PLACEHOLDER_DELAY": "0.3"]
        let workers = try ["w1", "w2"].map {
            try cli.startWorker(workerArguments(cli, id: $0, models: "sdxl") + ["--concurrency", "2"], environment: slow)
        }
        var done: [ParsedJSON] = []
        for id in ids { done.append(try await cli.waitForStatus(id, "completed")) }
        for worker in workers { try await stop(worker) }

        #expect(done.allSatisfy { $0["status"]?.string == "completed" }, "\(done)")
        // At no instant were more than two jobs between their start and their end.
        var edges: [(time: Int64, change: Int)] = []
        for job in done {
            edges.append((try #require(job["started_at"]?.integer), 1))
            edges.append((try #require(job["finished_at"]?.integer), -1))
        }
        edges.sort { $0.time != $1.time ? $0.time < $1.time : $0.change < $1.change }  // ends before starts
        var running = 0
        var most = 0
        for edge in edges {
            running += edge.change
            most = max(most, running)
        }
        #expect(most <= 2, "\(most) jobs ran at once: \(done)")
    }

    @Test("a SIGKILLed worker's job is recovered after its lease by another worker and completed once")
    func killedWorkerRecovered() async throws {
        let cli = try await makeCLI()
        defer { cli.removeOutputDirectory() }
        let id = try await cli.enqueue("an orphaned comet", model: "flux", enhance: false)
        let doomed = try cli.startWorker(workerArguments(cli, id: "doomed", models: "flux", lease: 2),
                                         environment: ["IMAGEQUEUE_PLACEHOLDER_DELAY": "60"])
        let generating = try await cli.waitForStatus(id, "generating")
        try #require(generating["status"]?.string == "generating", "worker output:\n\(doomed.output)")
        let watch = try cli.start(["watch", id, "--json", "--redis", cli.redisURL, "--prefix", cli.prefix])
        #expect(await watch.waitForOutput(containing: "\"generating\""), "watch output:\n\(watch.output)")
        doomed.send(SIGKILL)
        #expect(try await doomed.waitForExit() == .signalled(SIGKILL))

        let rescuer = try cli.startWorker(workerArguments(cli, id: "rescuer", models: "flux", lease: 2))
        let done = try await cli.waitForStatus(id, "completed", timeout: 40)
        #expect(done["status"]?.string == "completed", "\(done)\nrescuer output:\n\(rescuer.output)")
        #expect(done["attempt"]?.integer == 2, "\(done)")
        #expect(done["worker"]?.string == "\(cli.prefix)-rescuer")
        #expect(try await watch.waitForExit() == .exited(0), "watch output:\n\(watch.output)")
        let completions = watch.stdout.split(separator: "\n").filter { $0.contains("\"completed\"") }
        #expect(completions.count == 1, "watch output:\n\(watch.stdout)")
        try await stop(rescuer)
        let queues = try await cli.json(["queues", "--json"])
        #expect(queues["flux"]?["completed_total"] == .integer(1), "\(queues)")
        #expect(queues["flux"]?["active"] == .integer(0), "\(queues)")
    }
}
