import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What happens to a job when its worker dies, or when Redis goes away under a worker.
@Suite("worker crash and Redis restart")
struct WorkerRecoveryTests {
    @Test("a SIGKILLed worker's job is recovered by another worker after the lease, ahead of later jobs")
    func killedWorkersJobIsRecovered() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        // The first generation hangs (the worker dies inside it); later ones answer at once.
        try await fake.script("flux", [["delay_ms": 60_000]])
        let first = try await cli.enqueue("an orphaned comet")
        let arguments = ["--models", "flux", "--backend", "http", "--lease-seconds", "2",
                         "--output-dir", try cli.outputDirectory()]

        let doomed = try cli.startWorker(arguments + ["--id", "\(cli.prefix)-doomed"], environment: fake.environment())
        let generating = try await cli.waitForStatus(first, "generating")
        try #require(generating["status"]?.string == "generating", "worker output:\n\(doomed.output)")
        try #require(try await waitForRequest(fake, "flux", prompt: "an orphaned comet"))
        let later = try await cli.enqueue("a later comet")
        doomed.send(SIGKILL)
        let doomedEnded = try await doomed.waitForExit()
        #expect(doomedEnded == .signalled(SIGKILL))

        let rescuer = try cli.startWorker(arguments + ["--id", "\(cli.prefix)-rescuer"], environment: fake.environment())
        let recovered = try await cli.waitForStatus(first, "completed", timeout: 40)
        let behind = try await cli.waitForStatus(later, "completed", timeout: 20)
        rescuer.send(SIGTERM)
        let rescuerEnded = try await rescuer.waitForExit()
        #expect(rescuerEnded == .exited(0), "rescuer output:\n\(rescuer.output)")

        #expect(recovered["status"]?.string == "completed", "\(recovered)\nrescuer output:\n\(rescuer.output)")
        #expect(recovered["attempt"]?.integer == 2, "\(recovered)")
        #expect(recovered["worker"]?.string == "\(cli.prefix)-rescuer")
        #expect(behind["status"]?.string == "completed", "\(behind)")
        #expect(behind["attempt"]?.integer == 1)
        // FIFO kept: the recovered job went back to the head, so the later one ran after it.
        let recoveredEnd = try #require(recovered["finished_at"]?.integer)
        let laterStart = try #require(behind["started_at"]?.integer)
        #expect(laterStart >= recoveredEnd, "the later job started before the recovered one finished")
        // Completed once: one request from the dead worker, one from the rescuer.
        let prompts = try await receivedPrompts(fake, "flux")
        #expect(prompts.filter { $0 == "an orphaned comet" }.count <= 2, "\(prompts)")
        #expect(prompts.filter { $0 == "a later comet" }.count == 1, "\(prompts)")
        #expect(prompts.last == "a later comet", "\(prompts)")
    }

    @Test("a worker reconnects by itself when its Redis server restarts")
    func workerSurvivesRedisRestart() async throws {
        let server = try await RedisServer.launch()
        let cli = try QueueCLI(redisURL: server.url)
        defer { cli.removeOutputDirectory() }
        let worker = try cli.startWorker(["--models", "flux", "--backend", "placeholder", "--lease-seconds", "3",
                                          "--output-dir", cli.outputDirectory(), "--id", "\(cli.prefix)-w1"])
        let before = try await cli.enqueue("before the restart")
        let first = try await cli.waitForStatus(before, "completed")
        try #require(first["status"]?.string == "completed", "worker output:\n\(worker.output)")

        try await server.restart()  // no persistence: the queue starts empty again
        let after = try await cli.enqueue("after the restart")
        let second = try await cli.waitForStatus(after, "completed", timeout: 60)

        #expect(second["status"]?.string == "completed", "\(second)\nworker output:\n\(worker.output)")
        #expect(worker.isRunning, "worker output:\n\(worker.output)")
        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()
        #expect(ended == .exited(0), "worker output:\n\(worker.output)")
        withExtendedLifetime(server) {}
    }

    @Test("a worker started while Redis is down keeps trying, and serves once Redis is up")
    func workerStartedBeforeRedis() async throws {
        let server = try await RedisServer.launch()
        await server.stop()
        let cli = try QueueCLI(redisURL: server.url)
        defer { cli.removeOutputDirectory() }
        let worker = try cli.startWorker(["--models", "flux", "--backend", "placeholder", "--lease-seconds", "3",
                                          "--output-dir", cli.outputDirectory(), "--id", "\(cli.prefix)-early"])
        try await Task.sleep(for: .seconds(4))  // past the connection's reconnect deadline
        #expect(worker.isRunning, "worker output:\n\(worker.output)")
        try await server.start()
        let id = try await cli.enqueue("after Redis came up")
        let done = try await cli.waitForStatus(id, "completed", timeout: 40)
        #expect(done["status"]?.string == "completed", "\(done)\nworker output:\n\(worker.output)")
        worker.send(SIGTERM)
        #expect(try await worker.waitForExit() == .exited(0), "worker output:\n\(worker.output)")
        withExtendedLifetime(server) {}
    }
}
