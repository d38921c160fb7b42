import Foundation
import Testing
import TestSupport

@Suite("imagequeue status")
struct StatusCommandTests {
    static let requiredKeys = ["id", "model", "status", "attempt", "position", "prompt", "enhanced_prompt",
                               "enqueued_at", "started_at", "finished_at", "worker", "result", "error"]

    @Test("--json of a queued job: every key, its position, null for what has not happened yet")
    func queuedJob() async throws {
        let cli = try CLI()
        _ = try await cli.enqueue("the first job")
        let id = try await cli.enqueue("a lighthouse at dusk")
        let result = try await cli.run(["status", id, "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.split(separator: "\n").count == 1, "stdout: \(result.stdout)")
        let job = try ParsedJSON.parse(result.stdout)
        let keys = try #require(job.object).keys
        for key in Self.requiredKeys {
            #expect(keys.contains(key), "missing \(key) in \(result.stdout)")
        }
        #expect(job["id"] == .string(id))
        #expect(job["model"] == .string("flux"))
        #expect(job["status"] == .string("queued"))
        #expect(job["attempt"] == .integer(0))
        #expect(job["position"] == .integer(2))
        #expect(job["prompt"] == .string("a lighthouse at dusk"))
        #expect(job["enqueued_at"]?.integer.map { $0 > 1_600_000_000_000 } == true, "enqueued_at: \(String(describing: job["enqueued_at"]))")
        #expect(writesInteger(result.stdout, key: "enqueued_at"))
        for key in ["enhanced_prompt", "started_at", "finished_at", "worker", "result", "error"] {
            #expect(job[key] == .null, "\(key) should be null: \(result.stdout)")
        }
    }

    @Test("--json of a completed job: times as integer ms in order, worker, result, enhanced prompt, no position")
    func completedJob() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue("a lighthouse at dusk")
        try await WorkerSteps(cli: cli).runToCompletion(id)

        let result = try await cli.run(["status", id, "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let job = try ParsedJSON.parse(result.stdout)
        for key in Self.requiredKeys {
            #expect(job[key] != nil, "missing \(key) in \(result.stdout)")
        }
        #expect(job["status"] == .string("completed"))
        #expect(job["attempt"] == .integer(1))
        #expect(job["position"] == .null)
        #expect(job["worker"] == .string(WorkerSteps.workerID))
        #expect(job["enhanced_prompt"] == .string("an enhanced prompt"))
        #expect(job["error"] == .null)
        #expect(job["result"]?["path"] == .string("/tmp/imagequeue-cli-test.png"))
        #expect(job["result"]?["bytes"] == .integer(4321))
        for key in ["enqueued_at", "started_at", "finished_at"] {
            #expect(writesInteger(result.stdout, key: key), "\(key) is not an integer: \(result.stdout)")
        }
        let enqueued = try #require(job["enqueued_at"]?.integer)
        let started = try #require(job["started_at"]?.integer)
        let finished = try #require(job["finished_at"]?.integer)
        #expect(enqueued <= started && started <= finished)
    }

    @Test("without --json: a readable summary naming the job, its status and prompt")
    func readableSummary() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue("a lighthouse at dusk")
        let result = try await cli.run(["status", id])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains(id))
        #expect(result.stdout.contains("queued"))
        #expect(result.stdout.contains("a lighthouse at dusk"))
        #expect((try? ParsedJSON.parse(result.stdout)) == nil, "expected text, got JSON: \(result.stdout)")
    }

    @Test("an id that names no job fails with one line")
    func unknownJob() async throws {
        let cli = try CLI()
        let result = try await cli.run(["status", "flux-01aaaaaaaaaaaaaaaaaaaaaaaa", "--json"])
        #expect(result.status != 0)
        expectOneLine(result.stderr)
        #expect(result.stdout.isEmpty)
    }
}
