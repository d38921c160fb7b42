import Foundation
import ImageQueue
import Logging
import Testing
import TestSupport

/// Jobs through the real worker against the fake Flux and SDXL endpoints: what is stored,
/// and what the endpoints receive.
@Suite(.timeLimit(.minutes(1)), .runsClients)
struct GenerationTests {
    @Test func fluxAndSDXLJobsCompleteWithTheServedImagesStoredAsFiles() async throws {
        let fixture = try await WorkerFixture.make()
        defer { fixture.close() }
        let png = try await fixture.cannedImage("flux")
        let jpeg = try await fixture.cannedImage("sdxl")
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && jpeg.starts(with: [0xFF, 0xD8, 0xFF]))

        try await fixture.withWorkers { _ in
            let fluxID = try await fixture.enqueue("a lighthouse at dusk", model: "flux")
            let sdxlID = try await fixture.enqueue("a lighthouse at dawn", model: "sdxl")
            let flux = try await fixture.waitForEnd(fluxID)
            let sdxl = try await fixture.waitForEnd(sdxlID)

            for (info, model, served, type, fileExtension) in [(flux, "flux", png, "image/png", "png"),
                                                               (sdxl, "sdxl", jpeg, "image/jpeg", "jpg")] {
                #expect(info.status == .completed, "\(model): \(String(describing: info.error))")
                let expectedPath = "\(fixture.output)/\(model)/\(info.id).\(fileExtension)"
                let result = try #require(info.result)
                #expect(result.store == "directory")
                #expect(result.contentType == type)
                #expect(result.bytes == served.count)
                #expect(result.path == expectedPath)
                #expect(result.placeholder == nil)
                let file = try await offPool { FileManager.default.contents(atPath: expectedPath) }
                #expect(file.map(Array.init) == served, "\(model): the stored file differs from what the fake served")
                let fetched = try await fixture.inspector.result(info.id)
                #expect(fetched.bytes == served)
                #expect(fetched.contentType == type)
                #expect(fixture.events.events(of: info.id).last?.result == result)
            }
            // No temporary file left behind next to the results.
            let leftovers = try await offPool {
                try ["flux", "sdxl"].flatMap { try FileManager.default.contentsOfDirectory(atPath: "\(fixture.output)/\($0)") }
            }
            #expect(leftovers.sorted() == ["\(fluxID).png", "\(sdxlID).jpg"].sorted())
        }
    }

    @Test func sdxlGetsABearerTokenAndJSONAndFluxGetsAPercentEncodedQuery() async throws {
        let fixture = try await WorkerFixture.make(sdxlKey: "sdxl-key-123")
        defer { fixture.close() }
        let prompt = "sunset & sea / 海 — café?=#+%"
        try await fixture.withWorkers { _ in
            let flux = try await fixture.waitForEnd(try await fixture.enqueue(prompt, model: "flux", enhance: false))
            let sdxl = try await fixture.waitForEnd(try await fixture.enqueue(prompt, model: "sdxl", enhance: false))
            #expect(flux.status == .completed && sdxl.status == .completed)
        }

        let fluxRequests = try await fixture.requests("flux")
        try #require(fluxRequests.count == 1)
        #expect(fluxRequests[0].method == "GET")
        #expect(fluxRequests[0].query == "prompt=sunset%20%26%20sea%20%2F%20%E6%B5%B7%20%E2%80%94%20caf%C3%A9%3F%3D%23%2B%25")
        #expect(fluxRequests[0].prompt == prompt)

        let sdxlRequests = try await fixture.requests("sdxl")
        try #require(sdxlRequests.count == 1)
        let request = sdxlRequests[0]
        #expect(request.method == "POST")
        #expect(request.headers["authorization"] == "Bearer sdxl-key-123")
        #expect(request.headers["content-type"]?.hasPrefix("application/json") == true)
        let body = try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any]
        #expect(body?.keys.sorted() == ["prompt"])
        #expect(body?["prompt"] as? String == prompt)
    }

    @Test func atMaxmemoryTheRedisResultStoreKeepsTheImageAndStoresItOnceThereIsRoom() async throws {
        let server = try await RedisServer.launch(extraArguments: ["--maxmemory-policy", "noeviction"])
        let fixture = try await WorkerFixture.make(redisURL: server.url) { $0.resultStore = .redis; $0.resultTTL = .seconds(600) }
        defer { fixture.close() }
        let jpeg = try await fixture.cannedImage("sdxl")
        let id = try await fixture.enqueue("a red bicycle", model: "sdxl")
        // Full (maxmemory below what Redis uses): the job is claimed and generated, but Redis
        // refuses the image's bytes.
        _ = try await fixture.redis.send("CONFIG", "SET", "maxmemory", "1")
        let lines = CapturedLines()
        var logger = Logger(label: "imageworker.tests.captured") { label in CapturingLogHandler(label: label, lines: lines) }
        logger.logLevel = .info
        let info = try await fixture.withWorkers(logger: logger) { _ in
            let deadline = ContinuousClock.now + .seconds(30)
            while !lines.all.contains(where: { $0.contains("Redis is out of memory") && $0.contains("keeping the image") }),
                  ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await fixture.inspector.status(id).status == .generating, "the job waits, claimed")
            _ = try await fixture.redis.send("CONFIG", "SET", "maxmemory", "0")
            return try await fixture.waitForEnd(id)
        }
        #expect(lines.all.contains { $0.contains("Redis is out of memory") && $0.contains("keeping the image") }, "\(lines.all)")
        #expect(info.status == .completed, "\(info)")
        #expect(info.attempt == 1, "it was not failed and run again")
        #expect(try await fixture.inspector.result(id).bytes == jpeg)
    }

    @Test func theRedisResultStoreKeepsTheBytesUnderAnExpiringKey() async throws {
        let fixture = try await WorkerFixture.make { $0.resultStore = .redis; $0.resultTTL = .seconds(600) }
        defer { fixture.close() }
        let jpeg = try await fixture.cannedImage("sdxl")
        try await fixture.withWorkers { _ in
            let info = try await fixture.waitForEnd(try await fixture.enqueue("a red bicycle", model: "sdxl"))
            #expect(info.status == .completed)
            let result = try #require(info.result)
            let key = fixture.keys.result(try JobID(info.id))
            #expect(result.store == "redis")
            #expect(result.key == key)
            #expect(result.path == nil)
            #expect(result.contentType == "image/jpeg")
            #expect(result.bytes == jpeg.count)
            let fetched = try await fixture.inspector.result(info.id)
            #expect(fetched.bytes == jpeg)
            #expect(fetched.contentType == "image/jpeg")
            let ttl = try await fixture.redis.send("PTTL", key).int ?? -2
            #expect(ttl > 0 && ttl <= 600_000, "PTTL \(ttl)")
            // Nothing was written to the output folder.
            let written = try await offPool { FileManager.default.fileExists(atPath: "\(fixture.output)/sdxl") }
            #expect(!written)
        }
    }
}
