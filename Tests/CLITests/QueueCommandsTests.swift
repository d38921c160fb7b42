import Foundation
import Testing
import TestSupport

@Suite("imagequeue queues, concurrency, cancel")
struct QueueCommandsTests {
    @Test("queues --json: one object per configured model with pending, active, dead, concurrency")
    func queuesShape() async throws {
        let cli = try CLI()
        let empty = try await cli.queues()
        #expect(Set(try #require(empty.object).keys) == ["flux", "sdxl"])
        for model in ["flux", "sdxl"] {
            #expect(empty[model]?["pending"] == .integer(0))
            #expect(empty[model]?["active"] == .integer(0))
            #expect(empty[model]?["dead"] == .integer(0))
            #expect(empty[model]?["concurrency"] == .integer(1))
        }

        _ = try await cli.enqueue(model: "flux")
        _ = try await cli.enqueue(model: "flux")
        _ = try await cli.enqueue(model: "sdxl")
        _ = try await WorkerSteps(cli: cli).claim(model: "flux")
        let stats = try await cli.queues()
        #expect(stats["flux"]?["pending"] == .integer(1))
        #expect(stats["flux"]?["active"] == .integer(1))
        #expect(stats["sdxl"]?["pending"] == .integer(1))
        #expect(stats["sdxl"]?["active"] == .integer(0))
    }

    @Test("concurrency shows the limit, sets N, keeps it; 0 exits 2 and changes nothing")
    func concurrency() async throws {
        let cli = try CLI()
        let initial = try await cli.run(["concurrency", "--model", "flux"])
        #expect(initial.status == 0, "stderr: \(initial.stderr)")
        #expect(initial.stdout.contains(#/\b1\b/#), "stdout: \(initial.stdout)")

        try await cli.run(["concurrency", "--model", "flux", "4"]).expectSuccess()
        let shown = try await cli.run(["concurrency", "--model", "flux"])
        #expect(shown.stdout.contains(#/\b4\b/#), "stdout: \(shown.stdout)")
        #expect(try await cli.queues()["flux"]?["concurrency"] == .integer(4))
        #expect(try await cli.queues()["sdxl"]?["concurrency"] == .integer(1))

        expectOneLineFailure(try await cli.run(["concurrency", "--model", "flux", "0"]), status: 2)
        #expect(try await cli.queues()["flux"]?["concurrency"] == .integer(4))
    }

    @Test("cancel of a queued job exits 0; cancelling it again exits 1 with one line")
    func cancelQueued() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue()
        let cancelled = try await cli.run(["cancel", id])
        #expect(cancelled.status == 0, "stderr: \(cancelled.stderr)")
        #expect(cancelled.stderr.isEmpty)

        let job = try await cli.json(["status", id, "--json"])
        #expect(job["status"] == .string("cancelled"))
        #expect(job["position"] == .null)
        #expect(job["finished_at"]?.integer != nil)
        #expect(try await cli.queues()["flux"]?["pending"] == .integer(0))

        expectOneLineFailure(try await cli.run(["cancel", id]), status: 1)
    }

    @Test("cancel of a running job ends it cancelled and frees its slot; cancelling it again exits 1 with one line")
    func cancelRunning() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue()
        _ = try await WorkerSteps(cli: cli).claim()
        let result = try await cli.run(["cancel", id])
        #expect(result.status == 0 && result.stdout == "cancelled \(id) (it was running: its worker stops it)\n", "\(result.stdout)\(result.stderr)")
        #expect(try await cli.json(["status", id, "--json"])["status"] == .string("cancelled"))
        #expect(try await cli.queues()["flux"]?["active"] == .integer(0))
        expectOneLineFailure(try await cli.run(["cancel", id]), status: 1)
    }
}
