import Foundation
import ImageQueue
@testable import ImageWorker
import Testing

/// The models file: what it may say, and the one line each mistake gets.
struct ModelTableTests {
    static func parse(_ json: String, environment: [String: String] = ["CF_API_TOKEN": "cf-secret-123"],
                      requireKeys: Bool = true, file: String = "/tmp/models.json") throws(ConfigurationError) -> ModelTable {
        try ModelTable.parse(Array(json.utf8), file: file, environment: environment, requireKeys: requireKeys)
    }

    static func reason(_ json: String, environment: [String: String] = ["CF_API_TOKEN": "cf-secret-123"]) -> String? {
        do {
            _ = try parse(json, environment: environment)
            return nil
        } catch {
            #expect(error.setting == "IMAGEQUEUE_MODELS_FILE")
            return error.description
        }
    }

    @Test func theIssuesExampleResolves() throws {
        let table = try Self.parse("""
            { "flux": { "backend": "workers-ai", "url": "https://api.cloudflare.com/client/v4/accounts/ACC/ai/run/@cf/black-forest-labs/flux-1-schnell",
                        "api_key_env": "CF_API_TOKEN", "params": { "steps": 4 }, "timeout_s": 120 },
              "sdxl": { "backend": "a1111", "urls": ["http://gpu-1:7860", "http://gpu-2:7860"], "model": "sd_xl_base_1.0",
                        "params": { "steps": 25, "width": 1024, "height": 1024 } } }
            """)
        #expect(table.names == ["flux", "sdxl"])
        let flux = try #require(table["flux"])
        #expect(flux.backend == .workersAI && flux.apiKey == "cf-secret-123" && flux.apiKeyVariable == "CF_API_TOKEN")
        #expect(flux.params["steps"] == .int(4) && flux.timeout == .seconds(120))
        let sdxl = try #require(table["sdxl"])
        #expect(sdxl.backend == .a1111 && sdxl.urls.count == 2 && sdxl.backendModel == "sd_xl_base_1.0")
        // What may be printed holds the variable's name, never the key.
        #expect(!"\(flux.publicDescription)".contains("cf-secret-123") && "\(flux.publicDescription)".contains("CF_API_TOKEN"))
        #expect(!"\(flux)".contains("cf-secret-123") && !String(reflecting: flux).contains("cf-secret-123"))
    }

    @Test func eachMistakeNamesTheModelAndTheKey() {
        #expect(Self.reason("[1, 2]")?.contains("is not a JSON object") == true)
        #expect(Self.reason("{ \"flux\": ")?.contains("is not a JSON object") == true)
        #expect(Self.reason("{}")?.contains("names no model") == true)
        #expect(Self.reason(#"{"flux": {"backend": "dall-e", "url": "http://x:1"}}"#)?
            .contains("model 'flux', key 'backend': 'dall-e' is not a backend") == true)
        #expect(Self.reason(#"{"flux": {"url": "http://x:1"}}"#)?.contains("model 'flux', key 'backend': is required") == true)
        #expect(Self.reason(#"{"flux": {"backend": "a1111"}}"#)?.contains("model 'flux', key 'url': is required") == true)
        #expect(Self.reason(#"{"flux": {"backend": "a1111", "url": "gpu-1:7860"}}"#)?.contains("model 'flux', key 'url'") == true)
        #expect(Self.reason(#"{"flux": {"backend": "a1111", "url": "http://x:1", "stpes": 4}}"#)?
            .contains("model 'flux', key 'stpes': is not a known key") == true)
        #expect(Self.reason(#"{"flux": {"backend": "workers-ai", "url": "http://x:1", "api_key_env": "NOPE_UNSET"}}"#)?
            .contains("model 'flux', key 'api_key_env': names NOPE_UNSET, which is not set") == true)
        #expect(Self.reason(#"{"flux": {"backend": "workers-ai", "url": "http://x:1"}}"#)?
            .contains("model 'flux', key 'api_key_env': is required") == true)
        #expect(Self.reason(#"{"flux-dev": {"backend": "placeholder"}}"#)?.contains("a-z, 0-9 and _") == true)
        #expect(Self.reason(#"{"c": {"backend": "comfyui", "url": "http://x:1", "prompt_node": "6"}}"#)?
            .contains("model 'c', key 'workflow': is required") == true)
        #expect(Self.reason(#"{"c": {"backend": "comfyui", "url": "http://x:1", "workflow": "/nonexistent/w.json", "prompt_node": "6"}}"#)?
            .contains("model 'c', key 'workflow': cannot read /nonexistent/w.json") == true)
        #expect(Self.reason(#"{"a": {"backend": "a1111", "url": "http://x:1", "prompt_node": "6"}}"#)?
            .contains("model 'a', key 'prompt_node': is used only by the comfyui backend") == true)
        #expect(Self.reason(#"{"a": {"backend": "a1111", "url": "http://x:1", "timeout_s": -1}}"#)?
            .contains("model 'a', key 'timeout_s'") == true)
    }

    @Test func producersNeedNoKeys() throws {
        let table = try Self.parse(#"{"flux": {"backend": "workers-ai", "url": "http://x:1", "api_key_env": "NOPE_UNSET"}}"#,
                                   environment: [:], requireKeys: false)
        #expect(table.names == ["flux"] && table["flux"]?.apiKey == nil)
    }

    @Test func aComfyUIWorkflowIsReadBesideTheFileAndItsPromptNodeChecked() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-models-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let workflow = #"{"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}}, "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}}}"#
        try workflow.write(to: directory.appendingPathComponent("flux.json"), atomically: true, encoding: .utf8)
        let file = directory.appendingPathComponent("models.json").path
        let table = try Self.parse(#"{"c": {"backend": "comfyui", "url": "http://x:1", "workflow": "flux.json", "prompt_node": "6"}}"#, file: file)
        #expect(table["c"]?.workflow?["9"] != nil && table["c"]?.promptInput == "text")
        #expect(table["c"]?.workflowPath == directory.appendingPathComponent("flux.json").path)
        #expect(throws: ConfigurationError.self) {
            _ = try Self.parse(#"{"c": {"backend": "comfyui", "url": "http://x:1", "workflow": "flux.json", "prompt_node": "7"}}"#, file: file)
        }
        #expect(throws: ConfigurationError.self) {
            _ = try Self.parse(#"{"c": {"backend": "comfyui", "url": "http://x:1", "workflow": "flux.json", "prompt_node": "6", "prompt_input": "clip"}}"#, file: file)
        }
    }

    @Test func comfyUIPromptIDsAreCanonicalLowercaseUUIDsDerivedFromTheJob() {
        let first = ComfyUIBackend.uuid("flux-01abc#1")
        #expect(first == ComfyUIBackend.uuid("flux-01abc#1"))
        #expect(first != ComfyUIBackend.uuid("flux-01abc#2"))
        #expect(first.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/) != nil, "\(first)")
    }
}
