import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `GET /v1/jobs/{id}/events` and `GET /v1/events`, read incrementally over a real socket.
@Suite("serve: event streams")
struct EventStreamTests {
    /// Checks the framing and payload of every event of one job: `event: status`, `id:` equal
    /// to the data's `rev`, v1 JSON for `job`, revisions strictly increasing.
    /// `perJobIDs`: a job's own stream carries `id: <rev>`; the all-jobs stream carries no
    /// `id:` (revisions are per job, so they are no position in it).
    private func checkFraming(_ events: [SSEStream.Event], job: String, model: String, perJobIDs: Bool = true,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        var lastRevision: Int64 = 0
        for event in events {
            #expect(event.event == "status", "\(event)", sourceLocation: sourceLocation)
            guard let json = event.json else {
                Issue.record("data is not JSON: \(event)", sourceLocation: sourceLocation)
                continue
            }
            #expect(json["v"] == .integer(1), "\(event)", sourceLocation: sourceLocation)
            #expect(json["id"] == .string(job), "\(event)", sourceLocation: sourceLocation)
            #expect(json["model"] == .string(model), "\(event)", sourceLocation: sourceLocation)
            #expect(json["time"]?.integer != nil && json["attempt"]?.integer != nil, "\(event)", sourceLocation: sourceLocation)
            let revision = json["rev"]?.integer ?? 0
            if perJobIDs {
                #expect(event.id == String(revision), "SSE id must be the rev: \(event)", sourceLocation: sourceLocation)
            } else {
                #expect(event.id == nil, "the all-jobs stream carries no SSE id: \(event)", sourceLocation: sourceLocation)
            }
            #expect(revision > lastRevision, "revisions out of order: \(events)", sourceLocation: sourceLocation)
            lastRevision = revision
        }
    }

    @Test("a job's stream: its current state first, then each event in order through completed, then the stream ends")
    func jobStreamThroughCompletion() async throws {
        let fixture = try ServeFixture()
        defer { fixture.removeOutputDirectory() }
        let server = try await fixture.startServer()
        let id = try await server.enqueue("a heron in the reeds")

        let stream = try server.stream("/v1/jobs/\(id)/events", auth: .none)
        let initial = await stream.waitForEvents { !$0.isEmpty }
        #expect(stream.status == 200, "\(stream.process.output)")
        #expect(stream.mediaType == "text/event-stream", "\(stream.headers)")
        try #require(initial.count == 1, "no current state first: \(stream.process.output)")
        #expect(initial[0].status == "queued", "\(initial)")
        #expect(initial[0].json?["position"] == .integer(1), "\(initial)")
        #expect(stream.process.isRunning, "the stream ended while the job is queued")

        // Now a worker runs it.
        let worker = try fixture.startWorker(models: ["flux"], delaySeconds: 0.5)
        let ended = await stream.waitForEnd(timeout: 60)
        #expect(ended == .exited(0), "the stream did not end after completion (curl: \(ended.map(\.description) ?? "still running")):\n\(stream.process.output)")
        let events = stream.events
        checkFraming(events, job: id, model: "flux")
        let statuses = events.compactMap(\.status)
        #expect(statuses.first == "queued", "\(statuses)")
        #expect(statuses.last == "completed", "\(statuses)")
        #expect(statuses.contains("generating"), "\(statuses)")
        // Only forward: generating after enhancing, completed last and once.
        if let enhancing = statuses.firstIndex(of: "enhancing"), let generating = statuses.firstIndex(of: "generating") {
            #expect(enhancing < generating, "\(statuses)")
        }
        #expect(statuses.filter { $0 == "completed" }.count == 1, "\(statuses)")
        let completed = events.last?.json
        #expect(completed?["result"]?["content_type"] == .string("image/png"), "\(String(describing: completed))")
        #expect(completed?["worker"] == .string("\(fixture.prefix)-w1"), "\(String(describing: completed))")
        // The events are those published: the last one is the job's latest state.
        let status = try await server.json("/v1/jobs/\(id)")
        #expect(status["status"] == .string("completed"))

        // A finished job's stream: just its current (terminal) state, then the end.
        let late = try server.stream("/v1/jobs/\(id)/events")
        let lateEnd = await late.waitForEnd(timeout: 30)
        #expect(lateEnd == .exited(0), "the stream of a finished job did not end: \(late.process.output)")
        #expect(late.events.compactMap(\.status) == ["completed"], "\(late.events)")
        #expect(late.events.first?.id == events.last?.id, "\(late.events) vs \(events)")

        worker.send(SIGTERM)
        _ = try await worker.waitForExit()
    }

    @Test("a job's stream survives a Redis restart mid-job and still ends with the terminal event")
    func jobStreamSurvivesRedisRestart() async throws {
        // AOF on, so the job outlives the restart as it would in production.
        let redis = try await RedisServer.launch(extraArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        let fixture = try ServeFixture(redisURL: redis.url)
        defer { fixture.removeOutputDirectory() }
        let server = try await fixture.startServer()
        let id = try await server.enqueue("a kingfisher on a branch")
        let stream = try server.stream("/v1/jobs/\(id)/events", auth: .none)
        try #require(await stream.waitForEvents { !$0.isEmpty }.count == 1, "\(stream.process.output)")

        let worker = try fixture.startWorker(models: ["flux"], delaySeconds: 3)
        _ = try await server.waitForJob(id) { $0["status"]?.string == "generating" }
        try await redis.restart()  // the server's subscription and every connection break here

        let ended = await stream.waitForEnd(timeout: 60)
        #expect(ended == .exited(0), "the stream did not end after the restart: \(stream.process.output)")
        let statuses = stream.events.compactMap(\.status)
        #expect(statuses.last == "completed", "\(statuses)")
        #expect(try await server.json("/v1/jobs/\(id)")["status"]?.string == "completed")
        _ = worker
    }

    @Test("cancelling a followed job sends cancelled and ends its stream")
    func jobStreamThroughCancel() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let id = try await server.enqueue("a vole", model: "sdxl")
        let stream = try server.stream("/v1/jobs/\(id)/events")
        try #require(await stream.waitForEvents { !$0.isEmpty }.count == 1, "\(stream.process.output)")
        #expect(try await server.send("DELETE", "/v1/jobs/\(id)").status == 200)
        let ended = await stream.waitForEnd(timeout: 30)
        #expect(ended == .exited(0), "the stream did not end after cancel: \(stream.process.output)")
        checkFraming(stream.events, job: id, model: "sdxl")
        #expect(stream.events.compactMap(\.status) == ["queued", "cancelled"], "\(stream.events)")
    }

    @Test("/v1/events carries every model's events of this prefix, and does not end")
    func globalStream() async throws {
        let fixture = try ServeFixture()
        defer { fixture.removeOutputDirectory() }
        let server = try await fixture.startServer()
        let stream = try server.stream("/v1/events", auth: .none)
        #expect(await stream.waitForHead() == 200, "\(stream.process.output)")
        #expect(stream.mediaType == "text/event-stream", "\(stream.headers)")

        let sdxl = try await server.enqueue("a newt", model: "sdxl")
        let flux = try await server.enqueue("a toad", model: "flux", enhance: false)
        let worker = try fixture.startWorker(models: ["flux"])
        #expect(try await server.send("DELETE", "/v1/jobs/\(sdxl)").status == 200)

        let events = await stream.waitForEvents(timeout: 60) { events in
            let seen = Set(events.compactMap { event in event.json.map { "\($0["id"]?.string ?? "") \($0["status"]?.string ?? "")" } })
            return seen.isSuperset(of: ["\(sdxl) queued", "\(sdxl) cancelled", "\(flux) queued", "\(flux) completed"])
        }
        let pairs = events.compactMap { event in event.json.map { ($0["id"]?.string ?? "", $0["status"]?.string ?? "") } }
        for wanted in [(sdxl, "queued"), (sdxl, "cancelled"), (flux, "queued"), (flux, "generating"), (flux, "completed")] {
            #expect(pairs.contains { $0 == wanted }, "missing \(wanted) in \(pairs)")
        }
        // Only this server's prefix: other tests share the Redis.
        let foreign = pairs.filter { $0.0 != sdxl && $0.0 != flux }
        #expect(foreign.isEmpty, "events of other prefixes' jobs: \(foreign)")
        checkFraming(events.filter { $0.json?["id"]?.string == flux }, job: flux, model: "flux", perJobIDs: false)
        checkFraming(events.filter { $0.json?["id"]?.string == sdxl }, job: sdxl, model: "sdxl", perJobIDs: false)
        // Each job's events in order within the shared stream.
        let fluxStatuses = pairs.filter { $0.0 == flux }.map(\.1)
        #expect(fluxStatuses.first == "queued" && fluxStatuses.last == "completed", "\(fluxStatuses)")

        // No end after terminal statuses: the stream stays open.
        try await Task.sleep(for: .seconds(1))
        #expect(stream.process.isRunning, "the global stream ended: \(stream.process.output)")
        await stream.close()
        worker.send(SIGTERM)
        _ = try await worker.waitForExit()
    }

    @Test("idle streams get a `: keep-alive` comment (every 15 s)")
    func keepAlive() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let id = try await server.enqueue("a quiet job", model: "sdxl")
        let global = try server.stream("/v1/events")
        let job = try server.stream("/v1/jobs/\(id)/events")
        #expect(await global.waitForHead() == 200)
        #expect(await job.waitForHead() == 200)
        // 15 s nominal; the limit is generous.
        async let globalAlive = global.waitForComment("keep-alive", timeout: 45)
        async let jobAlive = job.waitForComment("keep-alive", timeout: 45)
        #expect(await globalAlive, "no keep-alive on /v1/events: \(global.body.debugDescription)")
        #expect(await jobAlive, "no keep-alive on the job's stream: \(job.body.debugDescription)")
        // Comments are not events.
        #expect(job.events.compactMap(\.status) == ["queued"], "\(job.events)")
        await global.close()
        await job.close()
    }
}
