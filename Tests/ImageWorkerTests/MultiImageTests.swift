import Foundation
import ImageQueue
@testable import ImageWorker
import RedisClient
import Testing
import TestSupport

/// Jobs of several images (`n`): one backend call per image on a backend that makes one at a
/// time (each with its own seed where it takes one), one call with a batch size where it
/// makes a batch; every image stored, listed in the result and readable by index; progress
/// over the whole job; a cancel still stops it; a one-image job's result as before.
@Suite(.runsClients) struct MultiImageTests {
    static func models(_ fake: FakeBackends) -> String {
        """
        { "cf_flux": { "backend": "workers-ai", "url": "\(fake.workersAIURL(model: "@cf/black-forest-labs/flux-1-schnell"))",
                       "api_key_env": "CF_API_TOKEN" },
          "sd": { "backend": "a1111", "url": "\(fake.a1111URL)", "params": { "steps": 6 } },
          "dalle": { "backend": "openai", "url": "\(fake.openAIURL)", "api_key_env": "OPENAI_API_KEY", "model": "dall-e-3" },
          "gptimage": { "backend": "openai", "url": "\(fake.openAIURL)", "api_key_env": "OPENAI_API_KEY", "model": "gpt-image-1" },
          "flux": { "backend": "flux-worker", "url": "\(fake.fluxURL)" } }
        """
    }

    static func fixture(configure: @escaping (inout WorkerConfiguration) -> Void = { _ in }) async throws -> (WorkerFixture, String) {
        try await GPUBackendTests.fixture(models, configure: configure)
    }

    static func enqueue(_ fixture: WorkerFixture, _ prompt: String, model: String, n: Int) async throws -> String {
        try await fixture.client.enqueue(JobRequest(model: model, prompt: prompt, user: "tester", enhance: false, imageCount: n)).id
    }

    /// The job's images, read back through the library by index.
    static func images(of id: String, _ fixture: WorkerFixture, count: Int) async throws -> [[UInt8]] {
        var images: [[UInt8]] = []
        for index in 0..<count {
            let image = try await fixture.inspector.result(id, index: index)
            #expect(ImageFormat.contentType(of: image.bytes) == image.contentType, "image \(index)")
            images.append(image.bytes)
        }
        return images
    }

    /// The `result` JSON of the job's hash, as the worker wrote it.
    static func storedResult(_ id: String, _ fixture: WorkerFixture) async throws -> [String: Any] {
        let text = try #require(try await fixture.jobHash(id)["result"])
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    // MARK: - One call per image

    @Test func threeImagesOnAOneAtATimeBackendAreThreeCallsWithTheirOwnSeeds() async throws {
        let (fixture, directory) = try await Self.fixture()
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        try await fixture.withWorkers(models: ["cf_flux"]) { _ in
            let id = try await Self.enqueue(fixture, "three foxes", model: "cf_flux", n: 3)
            let info = try await fixture.waitForEnd(id)
            try #require(info.status == .completed, "\(String(describing: info.error))")
            #expect(info.imageCount == 3)

            // Three calls, each with its own seed.
            let calls = try await fixture.requests("workersai").filter { $0.prompt == "three foxes" }
            #expect(calls.count == 3)
            let seeds = calls.compactMap { GPUBackendTests.json($0.body)["seed"] as? Int }
            #expect(seeds.count == 3 && Set(seeds).count == 3, "\(seeds)")
            #expect(seeds == seeds.sorted() && seeds.last.map { $0 - seeds[0] } == 2, "base + index: \(seeds)")

            // Three distinct images, stored as files of their own, listed in the result.
            let result = try #require(info.result)
            let all = result.allImages
            #expect(all.count == 3 && result.images?.count == 3)
            #expect(all.first == JobResult(contentType: result.contentType, bytes: result.bytes, store: result.store,
                                           path: result.path, key: result.key, placeholder: result.placeholder),
                    "the first listed image is the one the top-level fields describe")
            let paths = all.compactMap(\.path)
            #expect(paths == ["\(fixture.output)/cf_flux/\(id).png", "\(fixture.output)/cf_flux/\(id)+1.png",
                              "\(fixture.output)/cf_flux/\(id)+2.png"])
            let images = try await Self.images(of: id, fixture, count: 3)
            #expect(Set(images).count == 3, "three distinct images")
            for (image, path) in zip(images, paths) {
                #expect(try await offPool { FileManager.default.contents(atPath: path) }.map(Array.init) == image, "\(path)")
            }
            #expect(zip(all, images).allSatisfy { $0.bytes == $1.count })

            // There is no fourth.
            let beyond = await #expect(throws: ImageQueueError.self) { try await fixture.inspector.result(id, index: 3) }
            #expect(beyond?.code == .notFound && beyond?.message.contains("3 images") == true, "\(String(describing: beyond?.message))")
            // The completed event carries the same list.
            #expect(fixture.events.events(of: id).last?.result == result)
        }
    }

    @Test func theSeedWorkersAndDallE3AreCalledOncePerImage() async throws {
        let (fixture, directory) = try await Self.fixture()
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        try await fixture.withWorkers(models: ["flux", "dalle"]) { _ in
            let flux = try await Self.enqueue(fixture, "two lighthouses", model: "flux", n: 2)
            let dalle = try await Self.enqueue(fixture, "two moons", model: "dalle", n: 2)
            for id in [flux, dalle] {
                let info = try await fixture.waitForEnd(id)
                #expect(info.status == .completed && info.result?.allImages.count == 2, "\(id): \(String(describing: info.error))")
            }
        }
        #expect(try await fixture.requests("flux").filter { $0.prompt == "two lighthouses" }.count == 2)
        let dalleCalls = try await fixture.requests("openai").filter { $0.prompt == "two moons" }
        #expect(dalleCalls.count == 2)
        #expect(dalleCalls.allSatisfy { GPUBackendTests.json($0.body)["n"] as? Int == 1 }, "dall-e-3 makes one image per request")
    }

    @Test func threeImagesOnComfyUIAreThreePromptsWithRaisedSeeds() async throws {
        let workflow = FileManager.default.temporaryDirectory.appendingPathComponent("iq-seeded-\(UUID().uuidString).json").path
        try """
            {"3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 4, "model": ["4", 0], "positive": ["6", 0]}},
             "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev.safetensors"}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "PLACEHOLDER", "clip": ["4", 1]}},
             "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
             "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "iq", "images": ["8", 0]}}}
            """.write(toFile: workflow, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: workflow) }
        let (fixture, directory) = try await GPUBackendTests.fixture { fake in
            #"{ "comfy": { "backend": "comfyui", "url": "\#(fake.comfyUIURL)", "workflow": "\#(workflow)", "prompt_node": "6" } }"#
        }
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        try await fixture.fake.setRender(service: "comfyui", renderMs: 100, steps: 2)
        try await fixture.withWorkers(models: ["comfy"]) { _ in
            let id = try await Self.enqueue(fixture, "three lanterns", model: "comfy", n: 3)
            let info = try await fixture.waitForEnd(id)
            try #require(info.status == .completed, "\(String(describing: info.error))")
            let submissions = try await fixture.requests("comfyui").filter { $0.path.hasSuffix("/prompt") && $0.method == "POST" }
                .map { GPUBackendTests.json($0.body) }
            #expect(submissions.count == 3)
            let seeds = submissions.compactMap { (($0["prompt"] as? [String: Any])?["3"] as? [String: Any]).flatMap { ($0["inputs"] as? [String: Any])?["seed"] as? Int } }
            #expect(seeds == [42, 43, 44], "image k's seed is the workflow's + k")
            #expect(Set(submissions.compactMap { $0["prompt_id"] as? String }).count == 3, "a prompt id per image")
            #expect(Set(try await Self.images(of: id, fixture, count: 3)).count == 3, "three distinct images")
        }
    }

    // MARK: - One call with a batch

    @Test func threeImagesOnA1111AreOneCallWithBatchSizeThreeStoredUnderIndexedRedisKeys() async throws {
        let (fixture, directory) = try await Self.fixture { $0.resultStore = .redis }
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        try await fixture.withWorkers(models: ["sd"]) { _ in
            let id = try await Self.enqueue(fixture, "three castles", model: "sd", n: 3)
            let info = try await fixture.waitForEnd(id)
            try #require(info.status == .completed, "\(String(describing: info.error))")

            let calls = try await fixture.requests("a1111").filter { $0.path.hasSuffix("/txt2img") }
            #expect(calls.count == 1, "one call for the batch")
            let body = GPUBackendTests.json(try #require(calls.first).body)
            #expect(body["batch_size"] as? Int == 3 && body["prompt"] as? String == "three castles" && body["steps"] as? Int == 6,
                    "\(body)")
            #expect(try await fixture.fake.renders(service: "a1111").count == 1)

            // The result JSON as stored lists three images, each under its own key.
            let stored = try await Self.storedResult(id, fixture)
            let listed = try #require(stored["images"] as? [[String: Any]])
            #expect(listed.count == 3)
            let jobID = try JobID(id)
            let keys = listed.compactMap { $0["key"] as? String }
            #expect(keys == (0..<3).map { fixture.keys.result(jobID, index: $0) })
            #expect(keys.first == fixture.keys.result(jobID) && stored["key"] as? String == keys.first)
            #expect(Set(keys).count == 3 && keys[1].hasSuffix(":1"))
            for key in keys {
                #expect(try await fixture.redis.send("PTTL", key).int ?? -1 > 0, "\(key) expires like a one-image result")
            }

            let images = try await Self.images(of: id, fixture, count: 3)
            #expect(Set(images).count == 3, "three distinct images")
            #expect(zip(listed, images).allSatisfy { ($0["bytes"] as? Int) == $1.count })
        }
    }

    @Test func threeImagesOnAnOpenAIModelThatBatchesAreOneCallWithNThree() async throws {
        let (fixture, directory) = try await Self.fixture()
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        try await fixture.withWorkers(models: ["gptimage"]) { _ in
            let id = try await Self.enqueue(fixture, "three owls", model: "gptimage", n: 3)
            let info = try await fixture.waitForEnd(id)
            try #require(info.status == .completed, "\(String(describing: info.error))")
            let calls = try await fixture.requests("openai").filter { $0.prompt == "three owls" }
            #expect(calls.count == 1)
            #expect(calls.first.map { GPUBackendTests.json($0.body)["n"] as? Int } == 3)
            #expect(Set(try await Self.images(of: id, fixture, count: 3)).count == 3)
        }
    }

    // MARK: - One image: as before

    @Test func aOneImageJobsResultHasNoImagesList() async throws {
        let (fixture, directory) = try await Self.fixture()
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        try await fixture.withWorkers(models: ["cf_flux", "sd"]) { _ in
            for model in ["cf_flux", "sd"] {
                let id = try await Self.enqueue(fixture, "one \(model)", model: model, n: 1)
                let info = try await fixture.waitForEnd(id)
                try #require(info.status == .completed, "\(String(describing: info.error))")
                let stored = try await Self.storedResult(id, fixture)
                #expect(Set(stored.keys) == ["content_type", "bytes", "store", "path"], "\(model): \(stored)")
                #expect(stored["path"] as? String == "\(fixture.output)/\(model)/\(id).png")
                #expect(info.result?.images == nil && info.result?.allImages.count == 1)
                #expect(try await fixture.jobHash(id)["request"]?.contains(#""n""#) == false, "n = 1 is left out of the request")
                #expect(try await fixture.inspector.result(id).bytes.count == info.result?.bytes)
            }
        }
        // As before: no seed sent to Workers AI, A1111 asked for one image without n_iter.
        let cf = try #require(try await fixture.requests("workersai").first { $0.prompt == "one cf_flux" })
        #expect(GPUBackendTests.json(cf.body)["seed"] == nil)
        let sd = GPUBackendTests.json(try #require(try await fixture.requests("a1111").first { $0.path.hasSuffix("/txt2img") }).body)
        #expect(sd["batch_size"] as? Int == 1 && sd["n_iter"] == nil, "\(sd)")
    }

    // MARK: - The offline backend, progress, cancel

    @Test func thePlaceholderMakesDistinctImagesAndProgressMovesOverTheWholeJob() async throws {
        let fixture = try await WorkerFixture.make(environment: ["IMAGEQUEUE_BACKEND": "placeholder"]) {
            $0.placeholderDelay = .milliseconds(1500)
            $0.placeholderSize = 32
        }
        defer { fixture.close() }
        try await fixture.withWorkers(models: ["flux"]) { _ in
            let id = try await Self.enqueue(fixture, "a placeholder trio", model: "flux", n: 3)
            let info = try await fixture.waitForEnd(id)
            try #require(info.status == .completed, "\(String(describing: info.error))")
            let all = try #require(info.result?.allImages)
            #expect(all.count == 3 && all.allSatisfy { $0.placeholder == true })
            let images = try await Self.images(of: id, fixture, count: 3)
            #expect(Set(images).count == 3, "three distinct placeholder images")
            // The first is the prompt's one-image picture.
            #expect(images.first == PlaceholderImage.render(prompt: "a placeholder trio", model: "flux", size: 32))

            // Each image reports tenths of its own part: the job's progress rises through all three.
            let progress = fixture.events.events(of: id).filter { $0.status == .generating }.compactMap { $0.fields["progress"]?.doubleValue }
            #expect(progress == progress.sorted() && progress.allSatisfy { (0...1).contains($0) }, "\(progress)")
            #expect(progress.contains { $0 < 0.34 } && progress.contains { $0 > 0.34 && $0 < 0.67 } && progress.contains { $0 > 0.67 },
                    "\(progress)")
        }
    }

    @Test func aCancelStopsAJobOfSeveralImages() async throws {
        let (fixture, directory) = try await Self.fixture { $0.lease = .seconds(60) }
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        // The first image hangs; everything after answers at once.
        try await fixture.fake.script("workersai", [["delay_ms": 60_000]])
        try await fixture.withWorkers(models: ["cf_flux"]) { _ in
            let doomed = try await Self.enqueue(fixture, "four doomed foxes", model: "cf_flux", n: 4)
            let next = try await Self.enqueue(fixture, "the one after", model: "cf_flux", n: 1)
            #expect(try await waitForRequest(fixture.fake, "workersai", prompt: "four doomed foxes"))
            #expect(try await fixture.client.cancel(doomed) == .wasRunning)
            let after = try await fixture.waitForEnd(next)
            #expect(after.status == .completed, "\(String(describing: after.error))")
            #expect(try await fixture.inspector.status(doomed).status == .cancelled)
            #expect(fixture.events.events(of: doomed).last?.status == .cancelled)
        }
        // No image was asked for after the cancel.
        #expect(try await fixture.requests("workersai").filter { $0.prompt == "four doomed foxes" }.count == 1)
    }
}
