import Foundation
import ImageQueue
@testable import ImageWorker
import RedisClient
import Testing
import TestSupport

/// Each backend of the models file against our fake of it (Tests/Fakes/fake_backends.py):
/// an image end to end, rising progress and a preview where the service reports them, a
/// running job cancelled with the service told to stop, its failure modes, and a pool.
@Suite(.runsClients) struct GPUBackendTests {
    /// A fixture whose models come from a models file written for `fake`.
    static func fixture(_ models: (FakeBackends) -> String, environment: [String: String] = [:],
                        configure: @escaping (inout WorkerConfiguration) -> Void = { _ in }) async throws -> (WorkerFixture, String) {
        let fake = try await FakeBackends.start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-gpu-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try comfyWorkflow.write(to: directory.appendingPathComponent("workflow.json"), atomically: true, encoding: .utf8)
        let file = directory.appendingPathComponent("models.json").path
        try models(fake).write(toFile: file, atomically: true, encoding: .utf8)
        let fixture = try await WorkerFixture.make(fake: fake, environment: environment.merging([
            "IMAGEQUEUE_MODELS_FILE": file, "CF_API_TOKEN": "cf-test-token", "OPENAI_API_KEY": "openai-test-key",
            "IMAGEQUEUE_GENERATION_ATTEMPTS": "2"]) { $1 }, configure: configure)
        return (fixture, directory.path)
    }

    static let comfyWorkflow = """
        {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev.safetensors"}},
         "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "PLACEHOLDER", "clip": ["4", 1]}},
         "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
         "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "iq", "images": ["8", 0]}}}
        """

    static func models(_ fake: FakeBackends) -> String {
        """
        { "cf_flux": { "backend": "workers-ai", "url": "\(fake.workersAIURL(model: "@cf/black-forest-labs/flux-1-schnell"))",
                       "api_key_env": "CF_API_TOKEN", "params": { "steps": 4 } },
          "cf_sdxl": { "backend": "workers-ai", "url": "\(fake.workersAIURL(model: "@cf/stabilityai/stable-diffusion-xl-base-1.0"))",
                       "api_key_env": "CF_API_TOKEN" },
          "sd": { "backend": "a1111", "url": "\(fake.a1111URL)", "model": "sd_xl_base_1.0", "params": { "steps": 6, "width": 512 } },
          "comfy": { "backend": "comfyui", "url": "\(fake.comfyUIURL)", "workflow": "workflow.json", "prompt_node": "6" },
          "dalle": { "backend": "openai", "url": "\(fake.openAIURL)", "api_key_env": "OPENAI_API_KEY", "model": "dall-e-3",
                     "params": { "size": "1024x1024" } },
          "pool": { "backend": "flux-worker", "urls": ["http://127.0.0.1:9/flux", "\(fake.fluxURL)"] } }
        """
    }

    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    // MARK: - Images end to end

    @Test func everyBackendMakesAnImageEndToEnd() async throws {
        let (fixture, directory) = try await Self.fixture(Self.models)
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        let models = ["cf_flux", "cf_sdxl", "sd", "comfy", "dalle"]
        try await fixture.withWorkers(models: models) { _ in
            var ids: [String: String] = [:]
            for model in models { ids[model] = try await fixture.enqueue("a lighthouse for \(model)", model: model, enhance: false) }
            for model in models {
                let info = try await fixture.waitForEnd(ids[model]!)
                #expect(info.status == .completed, "\(model): \(String(describing: info.error))")
                #expect(info.result?.contentType == "image/png", "\(model)")
            }
        }
        // What each service received.
        let flux = try #require(try await fixture.requests("workersai").first { $0.prompt == "a lighthouse for cf_flux" })
        #expect(flux.headers["authorization"] == "Bearer cf-test-token")
        #expect(Self.json(flux.body)["steps"] as? Int == 4)
        let sd = try #require(try await fixture.requests("a1111").first { $0.path.hasSuffix("/txt2img") })
        let sdBody = Self.json(sd.body)
        #expect(sdBody["prompt"] as? String == "a lighthouse for sd" && sdBody["steps"] as? Int == 6)
        #expect((sdBody["override_settings"] as? [String: Any])?["sd_model_checkpoint"] as? String == "sd_xl_base_1.0")
        let comfy = try #require(try await fixture.requests("comfyui").first { $0.path.hasSuffix("/prompt") })
        let graph = try #require(Self.json(comfy.body)["prompt"] as? [String: Any])
        #expect(((graph["6"] as? [String: Any])?["inputs"] as? [String: Any])?["text"] as? String == "a lighthouse for comfy")
        #expect(((graph["4"] as? [String: Any])?["inputs"] as? [String: Any])?["ckpt_name"] as? String == "flux1-dev.safetensors",
                "every other node is sent as written")
        let promptID = try #require(Self.json(comfy.body)["prompt_id"] as? String)
        #expect(promptID.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/) != nil)
        let dalle = try #require(try await fixture.requests("openai").first)
        let dalleBody = Self.json(dalle.body)
        #expect(dalleBody["model"] as? String == "dall-e-3" && dalleBody["response_format"] as? String == "b64_json")
        #expect(dalleBody["size"] as? String == "1024x1024" && dalle.headers["authorization"] == "Bearer openai-test-key")
    }

    // MARK: - Progress and previews

    @Test(arguments: ["sd", "comfy"])
    func progressRisesAndAPreviewIsStored(model: String) async throws {
        let (fixture, directory) = try await Self.fixture(Self.models)
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        let service = model == "sd" ? "a1111" : "comfyui"
        // 10 s: several progress reports even when the whole suite loads the machine.
        try await fixture.fake.setRender(service: service, renderMs: 10_000, steps: 10)
        try await fixture.withWorkers(models: [model]) { _ in
            let id = try await fixture.enqueue("a slow nebula", model: model, enhance: false)
            let info = try await fixture.waitForEnd(id)
            #expect(info.status == .completed, "\(String(describing: info.error))")
            let generating = fixture.events.events(of: id).filter { $0.status == .generating }
            let progress = generating.compactMap { $0.fields["progress"]?.doubleValue }
            #expect(progress.count >= 2, "\(progress)")
            #expect(progress == progress.sorted() && progress.allSatisfy { (0...1).contains($0) }, "\(progress)")
            #expect(generating.contains { $0.fields["preview"] == .bool(true) }, "a preview event")
            // Events at most every 500 ms.
            let times = generating.filter { $0.fields["progress"] != nil }.map(\.time)
            #expect(zip(times, times.dropFirst()).allSatisfy { $1 - $0 >= 450 }, "\(generating.map(\.json))")
            // The preview is in Redis, a small PNG with a TTL.
            let key = fixture.keys.preview(try JobID(id))
            let bytes = try #require(try await fixture.redis.send("GET", key).bytes)
            #expect(ImageFormat.contentType(of: bytes) == "image/png" && bytes.count <= 64 * 1024)
            #expect(try await fixture.redis.send("PTTL", key).int ?? -1 > 0)
        }
    }

    // MARK: - Cancel

    @Test(arguments: ["sd", "comfy"])
    func aRunningRenderIsInterruptedAndTheNextJobStarts(model: String) async throws {
        let (fixture, directory) = try await Self.fixture(Self.models) { $0.lease = .seconds(60) }
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        let service = model == "sd" ? "a1111" : "comfyui"
        try await fixture.fake.setRender(service: service, renderMs: 60_000, steps: 600)
        try await fixture.withWorkers(models: [model]) { _ in
            let doomed = try await fixture.enqueue("a render nobody wants", model: model, enhance: false)
            let next = try await fixture.enqueue("the one after", model: model, enhance: false)
            try await eventually(within: .seconds(20)) { try await fixture.fake.renders(service: service).count == 1 }
            try await fixture.fake.setRender(service: service, renderMs: 300, steps: 3)
            let cancelled = ContinuousClock.now
            #expect(try await fixture.client.cancel(doomed) == .wasRunning)
            // The service was told to stop by the cancel message: within 2 s on a quiet machine;
            // the wait allows a loaded one, and stays below the 20 s heartbeat of a 60 s lease (the backstop) and
            // far below the minute the render would take.
            try await eventually(within: .seconds(15)) {
                try await fixture.fake.renders(service: service).first?["interrupted"] as? Bool == true
            }
            #expect(ContinuousClock.now - cancelled < .seconds(15))
            let after = try await fixture.waitForEnd(next)
            #expect(after.status == .completed, "\(String(describing: after.error))")
            #expect(try await fixture.inspector.status(doomed).status == .cancelled)
            #expect(fixture.events.events(of: doomed).last?.status == .cancelled)
        }
    }

    // MARK: - Failure modes

    @Test func workersAIQuotaFailsAtOnceAndCapacityIsRetried() async throws {
        let (fixture, directory) = try await Self.fixture(Self.models)
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        try await fixture.fake.script("workersai", [["cf_error": ["code": 3036, "message": "daily free allocation exceeded"]],
                                                    ["cf_error": ["code": 3040, "message": "out of capacity"]]])
        try await fixture.withWorkers(models: ["cf_flux"]) { _ in
            let quota = try await fixture.waitForEnd(try await fixture.enqueue("quota", model: "cf_flux", enhance: false))
            #expect(quota.status == .failed && quota.error?.code == "backend_rejected", "\(String(describing: quota.error))")
            #expect(quota.error?.message.contains("daily allocation") == true)
            let capacity = try await fixture.enqueue("capacity", model: "cf_flux", enhance: false)
            let info = try await fixture.waitForEnd(capacity)
            #expect(info.status == .completed, "a 3040 is retried: \(String(describing: info.error))")
            #expect(fixture.events.events(of: capacity).contains { $0.status == .retrying && $0.error?.code == "backend_busy" })
        }
        #expect(try await fixture.requests("workersai").filter { $0.prompt == "quota" }.count == 1)
    }

    @Test func openAIQuotaAndPolicyFailAndA5xxIsRetried() async throws {
        let (fixture, directory) = try await Self.fixture(Self.models)
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        try await fixture.fake.script("openai", [["openai_error": ["code": "insufficient_quota", "type": "insufficient_quota", "message": "You exceeded your quota"]],
                                                 ["openai_error": ["code": "content_policy_violation", "type": "invalid_request_error", "message": "rejected"]],
                                                 ["status": 503], ["body_kind": "garbage", "status": 200]])
        try await fixture.withWorkers(models: ["dalle"]) { _ in
            let quota = try await fixture.waitForEnd(try await fixture.enqueue("quota", model: "dalle", enhance: false))
            #expect(quota.status == .failed && quota.error?.code == "backend_rejected", "\(String(describing: quota.error))")
            let policy = try await fixture.waitForEnd(try await fixture.enqueue("policy", model: "dalle", enhance: false))
            #expect(policy.status == .failed && policy.error?.code == "backend_rejected")
            let flaky = try await fixture.waitForEnd(try await fixture.enqueue("flaky", model: "dalle", enhance: false))
            #expect(flaky.status == .failed && flaky.error?.code == "invalid_image", "a 503, then garbage: \(String(describing: flaky.error))")
        }
        #expect(try await fixture.requests("openai").filter { $0.prompt == "flaky" }.count == 2)
    }

    @Test func a1111GarbageAndComfyUIErrorsFailTheJob() async throws {
        let (fixture, directory) = try await Self.fixture(Self.models)
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        try await fixture.fake.script("a1111", [["body": "{\"images\": [\"bm90IGFuIGltYWdl\"]}", "headers": ["Content-Type": "application/json"]]])
        try await fixture.fake.script("comfyui", [["execution_error": "CUDA out of memory"]])
        try await fixture.withWorkers(models: ["sd", "comfy"]) { _ in
            let sd = try await fixture.waitForEnd(try await fixture.enqueue("not an image", model: "sd", enhance: false))
            #expect(sd.status == .failed && sd.error?.code == "invalid_image", "\(String(describing: sd.error))")
            let comfy = try await fixture.waitForEnd(try await fixture.enqueue("a broken node", model: "comfy", enhance: false))
            #expect(comfy.status == .failed && comfy.error?.code == "backend_rejected", "\(String(describing: comfy.error))")
        }
    }

    @Test func aComfyUIRenderAnEarlierAttemptSubmittedIsFetchedNotRenderedAgain() async throws {
        let (fixture, directory) = try await Self.fixture(Self.models)
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        // ComfyUI takes the prompt, then the connection drops before the answer: the attempt
        // fails as unreachable, and the retry finds the render under the same prompt id.
        try await fixture.fake.script("comfyui", [["drop": true, "render_ms": 200]])
        try await fixture.withWorkers(models: ["comfy"]) { _ in
            let id = try await fixture.enqueue("rendered once", model: "comfy", enhance: false)
            let info = try await fixture.waitForEnd(id)
            #expect(info.status == .completed, "\(String(describing: info.error))")
        }
        let renders = try await fixture.fake.renders(service: "comfyui")
        #expect(renders.count == 1, "\(renders)")
    }

    @Test func aComfyUIRenderPastItsTimeoutIsInterruptedAndDroppedThenRenderedAnew() async throws {
        // The model's timeout is 5 s; the first render would take 10 minutes, the retry's 50 ms
        // (with room to spare on a loaded machine: the default 600 ms missed a 1 s timeout there).
        let (fixture, directory) = try await Self.fixture { fake in
            """
            { "comfy": { "backend": "comfyui", "url": "\(fake.comfyUIURL)", "workflow": "workflow.json", "prompt_node": "6",
                         "timeout_s": 5 } }
            """
        }
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        try await fixture.fake.script("comfyui", [["render_ms": 600_000], ["render_ms": 50]])
        try await fixture.withWorkers(models: ["comfy"]) { _ in
            let id = try await fixture.enqueue("too slow at first", model: "comfy", enhance: false)
            let info = try await fixture.waitForEnd(id)
            #expect(info.status == .completed, "\(String(describing: info.error))")
            let retry = fixture.events.events(of: id).first { $0.status == .retrying }
            #expect(retry?.error?.code == "backend_timeout", "\(fixture.events.events(of: id).map(\.status))")
        }
        let renders = try await fixture.fake.renders(service: "comfyui")
        #expect(renders.count == 2, "\(renders)")
        // The slow render was told to stop (POST /interrupt), not left to run on the GPU.
        #expect(renders.first?["interrupted"] as? Bool == true, "\(renders)")
        #expect(renders.last?["status"] as? String == "success", "\(renders)")
        // And taken out of ComfyUI's queue (POST /queue {"delete": [id]}).
        let requests = try await fixture.fake.requests("comfyui")
        let deletes = requests.filter { ($0["path"] as? String)?.hasSuffix("/queue") == true && ($0["method"] as? String) == "POST" }
        #expect(!deletes.isEmpty, "\(requests.map { "\($0["method"] ?? "") \($0["path"] ?? "")" })")
    }

    // MARK: - Pools

    @Test func aPoolWithOneURLDownServesEveryJobFromTheOther() async throws {
        let (fixture, directory) = try await Self.fixture(Self.models)
        defer { fixture.close(); try? FileManager.default.removeItem(atPath: directory) }
        try await fixture.withWorkers(models: ["pool"]) { _ in
            var ids: [String] = []
            for index in 0..<6 { ids.append(try await fixture.enqueue("pooled \(index)", model: "pool", enhance: false)) }
            for id in ids {
                let info = try await fixture.waitForEnd(id)
                #expect(info.status == .completed, "\(String(describing: info.error))")
                // No retry: the dead URL is skipped within the attempt.
                #expect(!fixture.events.events(of: id).contains { $0.status == .retrying })
            }
        }
        #expect(try await fixture.requests("flux").filter { $0.prompt?.hasPrefix("pooled") == true }.count == 6)
    }
}
