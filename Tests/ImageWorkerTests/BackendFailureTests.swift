import Foundation
import ImageQueue
import RedisClient
import Testing
import TestSupport

/// Permanent backend failures end the job at once, in the dead list, with the right code
/// and a message fit for the user.
@Suite(.timeLimit(.minutes(1)), .runsClients)
struct BackendFailureTests {
    @Test func a401FailsTheJobAtOnceIntoTheDeadList() async throws {
        let fixture = try await WorkerFixture.make()
        defer { fixture.close() }
        try await fixture.fake.script("sdxl", [["status": 401]])
        let info = try await fixture.withWorkers { _ in
            try await fixture.waitForEnd(try await fixture.enqueue("a locked door", model: "sdxl", enhance: false))
        }
        #expect(info.status == .failed)
        #expect(info.error?.code == "backend_rejected")
        #expect(info.error?.message == "The image service refused this request (HTTP 401).")
        #expect(info.attempt == 1)
        #expect(try await fixture.requests("sdxl").count == 1)
        #expect(!fixture.events.events(of: info.id).contains { $0.status == .retrying || ($0.status == .queued && $0.revision > 1) })
        #expect(try await fixture.inspector.deadJobs(model: "sdxl").map(\.id) == [info.id])
        #expect(try await fixture.redis.send("ZSCORE", fixture.keys.dead("sdxl"), info.id).isNull == false)
    }

    @Test func anHTMLPageWithStatus200IsNotAnImage() async throws {
        let fixture = try await WorkerFixture.make()
        defer { fixture.close() }
        try await fixture.fake.script("flux", [["body_kind": "html"]])
        let info = try await fixture.withWorkers { _ in
            try await fixture.waitForEnd(try await fixture.enqueue("a web page", enhance: false))
        }
        #expect(info.status == .failed)
        #expect(info.error?.code == "invalid_image")
        #expect(info.error?.message == "The image service did not return an image.")
        #expect(fixture.events.events(of: info.id).last?.error == info.error)
        #expect(try await fixture.requests("flux").count == 1)
        #expect(try await offPool { FileManager.default.fileExists(atPath: "\(fixture.output)/flux/\(info.id).png") } == false)
    }

    @Test func aBodySlowerThanTheGenerationTimeoutFailsAsATimeout() async throws {
        let fixture = try await WorkerFixture.make(environment: ["IMAGEQUEUE_GENERATION_TIMEOUT": "1",
                                                                 "IMAGEQUEUE_GENERATION_ATTEMPTS": "1"])
        defer { fixture.close() }
        #expect(fixture.configuration.generationTimeout == .seconds(1))
        try await fixture.fake.script("flux", [["slow_body_ms": 60_000]])
        let info = try await fixture.withWorkers { _ in
            try await fixture.waitForEnd(try await fixture.enqueue("a slow sunrise", enhance: false))
        }
        #expect(info.status == .failed)
        #expect(info.error?.code == "backend_timeout")
        #expect(info.error?.message == "The image service took too long to answer.")
        #expect(try await fixture.requests("flux").count == 1)
        // It gave up at its 1 s timeout, not when the 60 s body finished (the margin is wide
        // enough for a loaded machine).
        if let started = info.startedAt, let finished = info.finishedAt {
            #expect(finished - started < 30_000, "the job took \(finished - started) ms")
        }
    }
}
