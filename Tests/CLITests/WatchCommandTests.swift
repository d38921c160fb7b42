import Foundation
import Testing
import TestSupport

@Suite("imagequeue watch")
struct WatchCommandTests {
    @Test("watch --json of a completed job exits 0; every line is an event object, the last one completed")
    func completedJob() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue()
        try await WorkerSteps(cli: cli).runToCompletion(id)

        let result = try await cli.run(["watch", id, "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let statuses = try watchedStatuses(lines, id: id)
        #expect(statuses.last == "completed", "stdout: \(result.stdout)")
    }

    @Test("watch exits 1 for a cancelled job, its last line cancelled")
    func cancelledJob() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue()
        try await cli.run(["cancel", id]).expectSuccess()

        let result = try await cli.run(["watch", id, "--json"])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        let statuses = try watchedStatuses(result.stdout.split(separator: "\n").map(String.init), id: id)
        #expect(statuses.last == "cancelled", "stdout: \(result.stdout)")
    }

    @Test("watch exits 1 for a failed job, its last line failed")
    func failedJob() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue()
        let worker = WorkerSteps(cli: cli)
        #expect(try await worker.fail(worker.claim(), mode: "permanent") == "dead")

        let result = try await cli.run(["watch", id, "--json"])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        let statuses = try watchedStatuses(result.stdout.split(separator: "\n").map(String.init), id: id)
        #expect(statuses.last == "failed", "stdout: \(result.stdout)")
    }

    @Test("a watch started while the job is queued prints each change as it happens, in order, then exits 0")
    func liveEvents() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue()
        let watch = try cli.start(["watch", id, "--json"])
        // The first line is the stored state, read after subscribing: from here on no change is missed.
        let first = await watch.waitForLines(1)
        #expect(try watchedStatuses(first, id: id) == ["queued"])

        let worker = WorkerSteps(cli: cli)
        let claim = try await worker.claim()
        #expect(try watchedStatuses(await watch.waitForLines(2), id: id) == ["queued", "enhancing"])
        try await worker.progress(claim, stage: "generating", detail: #"{"enhanced_prompt":"an enhanced prompt"}"#)
        #expect(try watchedStatuses(await watch.waitForLines(3), id: id) == ["queued", "enhancing", "generating"])
        try await worker.complete(claim)

        let finished = try await watch.waitForExit()
        #expect(finished.status == 0, "stderr: \(finished.stderr)")
        let lines = finished.stdout.split(separator: "\n").map(String.init)
        #expect(try watchedStatuses(lines, id: id) == ["queued", "enhancing", "generating", "completed"])
        let revisions = try lines.map { try ParsedJSON.parse($0)["rev"]?.integer ?? -1 }
        #expect(revisions == revisions.sorted() && Set(revisions).count == revisions.count, "revs: \(revisions)")
    }

    @Test("watch prints a generating event's progress as a percentage, and a running job's cancel ends it (exit 1)")
    func progressAndCancelOfARunningJob() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue()
        let watch = try cli.start(["watch", id])
        #expect(await watch.waitForLines(1).count == 1)
        let worker = WorkerSteps(cli: cli)
        let claim = try await worker.claim()
        #expect(await watch.waitForLines(2).count == 2)
        try await worker.progress(claim, stage: "generating", detail: #"{"progress":0.456,"preview":true}"#)
        let lines = await watch.waitForLines(3)
        #expect(lines.last?.hasSuffix("generating 45 %  (preview)") == true, "\(lines)")
        let cancel = try await cli.run(["cancel", id])
        #expect(cancel.status == 0 && cancel.stdout.contains("it was running"), "\(cancel.stdout)\(cancel.stderr)")
        let finished = try await watch.waitForExit()
        #expect(finished.status == 1, "stderr: \(finished.stderr)")
        #expect(finished.stdout.split(separator: "\n").last?.contains("cancelled") == true, "\(finished.stdout)")
    }

    @Test("a watch started while the job is queued sees its cancellation and exits 1")
    func liveCancellation() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue()
        let watch = try cli.start(["watch", id, "--json"])
        #expect(try watchedStatuses(await watch.waitForLines(1), id: id) == ["queued"])
        try await cli.run(["cancel", id]).expectSuccess()

        let finished = try await watch.waitForExit()
        #expect(finished.status == 1, "stderr: \(finished.stderr)")
        #expect(try watchedStatuses(finished.stdout.split(separator: "\n").map(String.init), id: id) == ["queued", "cancelled"])
    }

    @Test("without --json: readable lines, not JSON, ending with the completion")
    func readableEvents() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue()
        try await WorkerSteps(cli: cli).runToCompletion(id)

        let result = try await cli.run(["watch", id])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.last?.contains("completed") == true, "stdout: \(result.stdout)")
        #expect(lines.allSatisfy { !$0.hasPrefix("{") }, "stdout: \(result.stdout)")
    }
}
