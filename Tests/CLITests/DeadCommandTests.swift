import Foundation
import Testing
import TestSupport

@Suite("imagequeue dead")
struct DeadCommandTests {
    @Test("after a permanent failure: dead list --json shows the job, retry requeues it, purge deletes it")
    func listRetryPurge() async throws {
        let cli = try CLI()
        let worker = WorkerSteps(cli: cli)
        let id = try await cli.enqueue()
        #expect(try await worker.fail(worker.claim(), mode: "permanent", code: "backend_rejected", message: "no foxes") == "dead")
        #expect(try await cli.queues()["flux"]?["dead"] == .integer(1))

        let dead = try #require(try await cli.json(["dead", "list", "--model", "flux", "--json"]).array)
        #expect(dead.count == 1)
        #expect(dead.first?["id"] == .string(id))
        #expect(dead.first?["status"] == .string("failed"))
        #expect(dead.first?["error"]?["code"] == .string("backend_rejected"))
        #expect(dead.first?["error"]?["message"] == .string("no foxes"))
        let failed = try await cli.json(["status", id, "--json"])
        #expect(failed["status"] == .string("failed"))
        #expect(failed["error"]?["code"] == .string("backend_rejected"))

        #expect(try await cli.json(["dead", "retry", "--model", "flux", "--json"]) == .object(["retried": .integer(1)]))
        #expect(try await cli.json(["dead", "list", "--model", "flux", "--json"]) == .array([]))
        let requeued = try await cli.json(["status", id, "--json"])
        #expect(requeued["status"] == .string("queued"))
        #expect(requeued["position"] == .integer(1))
        #expect(requeued["attempt"] == .integer(0))
        #expect(requeued["error"] == .null)

        let again = try await worker.claim()
        #expect(again.id == id)
        #expect(try await worker.fail(again, mode: "permanent") == "dead")
        #expect(try await cli.json(["dead", "purge", "--model", "flux", "--json"]) == .object(["purged": .integer(1)]))
        #expect(try await cli.json(["dead", "list", "--model", "flux", "--json"]) == .array([]))
        #expect(try await cli.queues()["flux"]?["dead"] == .integer(0))
        let gone = try await cli.run(["status", id, "--json"])
        #expect(gone.status != 0, "the purged job is still readable: \(gone.stdout)")
    }

    @Test("a retryable failure with attempts left requeues instead of dead-lettering")
    func retryableFailure() async throws {
        let cli = try CLI()
        let worker = WorkerSteps(cli: cli)
        let id = try await cli.enqueue()
        #expect(try await worker.fail(worker.claim(), mode: "retry") == "requeued")
        #expect(try await cli.json(["dead", "list", "--model", "flux", "--json"]) == .array([]))
        let job = try await cli.json(["status", id, "--json"])
        #expect(job["status"] == .string("queued"))
        #expect(job["attempt"] == .integer(1))
        #expect(job["error"]?["code"] == .string("backend_rejected"))
    }
}
