import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM to a worker process with a job in flight: it stops claiming, lets the job finish
/// within the grace period, and otherwise hands the job back to the head of its queue.
@Suite("worker shutdown on SIGTERM")
struct WorkerShutdownTests {
    @Test("a job that finishes within the grace period completes; nothing more is claimed")
    func jobFinishesWithinGrace() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        // Still in flight when SIGTERM lands even when the whole suite loads the machine (a
        // 5 s job once ended before the signal was handled, and the next one started).
        try await fake.setDelay("flux", milliseconds: 15_000)
        let first = try await cli.enqueue("a lighthouse at dusk")
        let second = try await cli.enqueue("a second lighthouse")

        let worker = try cli.startWorker(["--models", "flux", "--backend", "http", "--grace-seconds", "40",
                                          "--output-dir", cli.outputDirectory(), "--id", "\(cli.prefix)-w1"],
                                         environment: fake.environment())
        let generating = try await cli.waitForStatus(first, "generating")
        try #require(generating["status"]?.string == "generating", "worker output:\n\(worker.output)")
        // The job is inside the (slow) backend call, not merely about to make it.
        try #require(try await waitForRequest(fake, "flux", prompt: "a lighthouse at dusk"))

        worker.send(SIGTERM)
        let termination = try await worker.waitForExit(timeout: 60)

        #expect(termination == .exited(0), "worker output:\n\(worker.output)")
        // The signal reached the worker's graceful-shutdown path (not a default-action death).
        #expect(worker.output.contains("shutting down"), "worker output:\n\(worker.output)")
        let done = try await cli.status(first)
        #expect(done["status"]?.string == "completed", "\(done)\nworker output:\n\(worker.output)")
        #expect(done["attempt"]?.integer == 1)
        let waiting = try await cli.status(second)
        #expect(waiting["status"]?.string == "queued", "\(waiting)")
        #expect(waiting["position"]?.integer == 1)
        #expect(waiting["attempt"]?.integer == 0)
        let prompts = try await receivedPrompts(fake, "flux")
        #expect(prompts == ["a lighthouse at dusk"], "the worker asked the backend for more after SIGTERM")
    }

    @Test("a job still running when the grace period ends goes back to the head of its queue")
    func jobPastGraceIsReleased() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        try await fake.setDelay("flux", milliseconds: 30_000)
        let first = try await cli.enqueue("a very slow glacier")

        let worker = try cli.startWorker(["--models", "flux", "--backend", "http", "--grace-seconds", "1",
                                          "--output-dir", cli.outputDirectory(), "--id", "\(cli.prefix)-w1"],
                                         environment: fake.environment())
        let generating = try await cli.waitForStatus(first, "generating")
        try #require(generating["status"]?.string == "generating", "worker output:\n\(worker.output)")
        try #require(try await waitForRequest(fake, "flux", prompt: "a very slow glacier"))
        let later = try await cli.enqueue("a later request")

        worker.send(SIGTERM)
        // Grace 1 s, then the release: well under the backend's 30 s delay.
        let termination = try await worker.waitForExit(timeout: 12)

        #expect(termination == .exited(0), "worker output:\n\(worker.output)")
        let released = try await cli.status(first)
        #expect(released["status"]?.string == "queued", "\(released)\nworker output:\n\(worker.output)")
        #expect(released["position"]?.integer == 1, "\(released)")
        #expect(released["attempt"]?.integer == 0, "a released attempt must not count: \(released)")
        let behind = try await cli.status(later)
        #expect(behind["status"]?.string == "queued")
        #expect(behind["position"]?.integer == 2, "\(behind)")
        #expect(worker.output.contains("released"), "worker output:\n\(worker.output)")
    }
}
