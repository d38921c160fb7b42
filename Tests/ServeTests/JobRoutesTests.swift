import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Cancelling jobs, unknown jobs and fetching images.
@Suite("serve: job routes")
struct JobRoutesTests {
    @Test("unknown jobs are 404 not_found on every job route; a malformed id is 400 invalid_job_id")
    func unknownJobs() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let missing = "flux-01jzzzzzzzzzzzzzzzzzzzzzzz"
        expectError(try await server.get("/v1/jobs/\(missing)"), 404, "not_found", "GET unknown job")
        expectError(try await server.send("DELETE", "/v1/jobs/\(missing)"), 404, "not_found", "DELETE unknown job")
        expectError(try await server.get("/v1/jobs/\(missing)/image"), 404, "not_found", "image of unknown job")
        expectError(try await server.get("/v1/jobs/\(missing)/preview"), 404, "not_found", "preview of unknown job")
        // Answered before any stream starts: a plain JSON 404 (short timeout in case it streams).
        expectError(try await server.get("/v1/jobs/\(missing)/events", timeout: .seconds(15)), 404, "not_found",
                    "events of unknown job")
        for bad in ["nodash", "FLUX-abc", "flux-", "flux-a%20b"] {
            expectError(try await server.get("/v1/jobs/\(bad)"), 400, "invalid_job_id", "GET /v1/jobs/\(bad)")
        }
    }

    @Test("DELETE cancels a queued job (200 {id, status: cancelled}); cancelling it again is 409 not_queued")
    func cancelQueued() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let id = try await server.enqueue("a badger")
        let reply = try await server.send("DELETE", "/v1/jobs/\(id)")
        #expect(reply.status == 200, "\(reply)")
        #expect(reply.mediaType == "application/json", "\(reply)")
        #expect(try reply.json() == .object(["id": .string(id), "status": .string("cancelled"), "was": .string("queued")]), "\(reply)")

        let status = try await server.json("/v1/jobs/\(id)")
        #expect(status["status"] == .string("cancelled"))
        #expect(status["position"] == .null)
        #expect(status["finished_at"]?.integer != nil, "\(status)")
        let queues = try await server.json("/v1/queues")
        #expect(queues["flux"]?["pending"] == .integer(0), "\(queues)")

        expectError(try await server.send("DELETE", "/v1/jobs/\(id)"), 409, "not_queued", "cancel a cancelled job")
        expectError(try await server.get("/v1/jobs/\(id)/image"), 409, "not_completed", "image of a cancelled job")
        #expect(try await server.get("/v1/jobs/\(id)/image").text.contains("cancelled"), "the 409 does not name the status")
    }

    @Test("a running job has no image yet (409 not_completed); once completed, /image serves the PNG")
    func runningThenImage() async throws {
        let fixture = try ServeFixture()
        defer { fixture.removeOutputDirectory() }
        let server = try await fixture.startServer()
        // The first worker holds the job running for as long as the checks take, however
        // loaded the machine; on SIGTERM (no grace) it hands the job back, and a second
        // worker completes it.
        let holder = try fixture.startWorker(delaySeconds: 600, arguments: ["--grace-seconds", "0"])
        let id = try await server.enqueue("a kingfisher over a river")

        let running = try await server.waitForJob(id) { ["enhancing", "generating"].contains($0["status"]?.string ?? "") }
        try #require(["enhancing", "generating"].contains(running["status"]?.string ?? ""),
                     "the job never started: \(running)\nworker output:\n\(holder.output)")
        expectError(try await server.get("/v1/jobs/\(id)/image"), 409, "not_completed", "image of a running job")
        holder.send(SIGTERM)
        #expect(try await holder.waitForExit() == .exited(0), "\(holder.output)")

        let worker = try fixture.startWorker(name: "w2")
        let done = try await server.waitForJob(id, status: "completed")
        try #require(done["status"] == .string("completed"), "\(done)\nworker output:\n\(worker.output)")
        #expect(done["worker"] == .string("\(fixture.prefix)-w2"))
        #expect(done["finished_at"]?.integer != nil)
        #expect(done["result"]?["content_type"] == .string("image/png"), "\(done)")
        #expect(done["result"]?["placeholder"] == .bool(true), "\(done)")
        let size = try #require(done["result"]?["bytes"]?.integer)

        let image = try await server.get("/v1/jobs/\(id)/image", auth: .none)
        #expect(image.status == 200, "\(image.status) \(image.headers)")
        #expect(image.header("Content-Type") == "image/png", "\(image.headers)")
        #expect(Array(image.body.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "not a PNG")
        #expect(image.body.count == Int(size), "served \(image.body.count) bytes; the result says \(size)")
        // The same bytes the worker wrote.
        if let path = done["result"]?["path"]?.string, let file = FileManager.default.contents(atPath: path) {
            #expect(Array(file) == image.body)
        } else {
            Issue.record("the result names no readable file: \(done)")
        }
        // Still 409 once completed.
        expectError(try await server.send("DELETE", "/v1/jobs/\(id)"), 409, "not_queued", "cancel a completed job")

        worker.send(SIGTERM)
        _ = try await worker.waitForExit()
    }

    @Test("/image serves a JPEG with image/jpeg from the redis result store")
    func jpegFromRedisStore() async throws {
        let fixture = try ServeFixture()
        defer { fixture.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        let server = try await fixture.startServer()
        // The real SDXL path of the worker against the fake SDXL service, which answers a JPEG.
        let worker = try fixture.startWorker(exactly: ["--models", "sdxl", "--output-dir", fixture.outputDirectory(),
                                                       "--id", "\(fixture.prefix)-sdxl"],
                                             environment: fake.environment().merging(["IMAGEQUEUE_RESULT_STORE": "redis"]) { $1 })
        let id = try await server.enqueue("a lighthouse", model: "sdxl", enhance: false)
        let done = try await server.waitForJob(id, status: "completed")
        try #require(done["status"] == .string("completed"), "\(done)\nworker output:\n\(worker.output)")
        #expect(done["result"]?["store"] == .string("redis"), "\(done)")

        let image = try await server.get("/v1/jobs/\(id)/image")
        #expect(image.status == 200, "\(image.status) \(image.headers)")
        #expect(image.header("Content-Type") == "image/jpeg", "\(image.headers)")
        #expect(Array(image.body.prefix(3)) == [0xFF, 0xD8, 0xFF] && Array(image.body.suffix(2)) == [0xFF, 0xD9], "not a JPEG")
        #expect(done["result"]?["bytes"]?.integer == Int64(image.body.count))

        worker.send(SIGTERM)
        _ = try await worker.waitForExit()
    }

    @Test("a generating job's preview: served while an A1111 render runs, 409 once there is none; DELETE stops the running job")
    func previewAndCancelOfARunningJob() async throws {
        let fixture = try ServeFixture()
        defer { fixture.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        try await fake.setRender(service: "a1111", renderMs: 60_000, steps: 600)
        let models = FileManager.default.temporaryDirectory.appendingPathComponent("iq-serve-models-\(fixture.prefix).json")
        try #"{"flux": {"backend": "a1111", "url": "\#(fake.a1111URL)"}}"#.write(to: models, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: models) }
        let environment = ["IMAGEQUEUE_MODELS_FILE": models.path]
        let server = try await fixture.startServer(environment: environment)
        let worker = try fixture.startWorker(exactly: ["--models", "flux", "--output-dir", try fixture.outputDirectory(),
                                                      "--id", "\(fixture.prefix)-gpu"], environment: environment)
        defer { worker.send(SIGKILL) }
        let queued = try await server.enqueue("a slow aurora")
        var preview: Reply?
        try await eventually(within: .seconds(30)) {
            preview = try await server.get("/v1/jobs/\(queued)/preview")
            return preview?.status == 200
        }
        #expect(preview?.mediaType == "image/png", "\(String(describing: preview))")
        #expect(preview?.header("cache-control") == "no-store")
        #expect(preview?.body.starts(with: [0x89, 0x50, 0x4E, 0x47]) == true)

        let cancel = try await server.send("DELETE", "/v1/jobs/\(queued)")
        #expect(try cancel.json() == .object(["id": .string(queued), "status": .string("cancelled"), "was": .string("running")]), "\(cancel)")
        try await eventually(within: .seconds(2)) { try await fake.renders(service: "a1111").first?["interrupted"] as? Bool == true }
        expectError(try await server.get("/v1/jobs/\(queued)/preview"), 409, "no_preview", "no preview once cancelled")
        expectError(try await server.get("/v1/jobs/flux-01jzzzzzzzzzzzzzzzzzzzzzzz/preview"), 404, "not_found", "an unknown job")
        let again = try await server.send("DELETE", "/v1/jobs/\(queued)")
        #expect(again.status == 409 && again.errorCode == "not_queued", "\(again)")
        #expect(worker.isRunning, "\(worker.output)")
    }
}
