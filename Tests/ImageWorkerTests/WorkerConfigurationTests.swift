import Foundation
import ImageQueue
import ImageQueueCommandLine
import ImageWorker
import RedisClient
import TestSupport
import Testing

/// Settings from the environment and a config file, checked at start.
struct WorkerConfigurationTests {
    @Test(arguments: [
        (["FLUX_WORKER_URL": "localhost:8080/flux"], "FLUX_WORKER_URL"),
        (["SDXL_WORKER_URL": "ftp://example.com/sdxl"], "SDXL_WORKER_URL"),
        (["OPENROUTER_BASE_URL": "openrouter.ai/api"], "OPENROUTER_BASE_URL"),
        (["GEMINI_BASE_URL": "http://"], "GEMINI_BASE_URL"),
        (["GEMINI_BASE_URL": "http:/example.com"], "GEMINI_BASE_URL"),
        (["IMAGEQUEUE_GENERATION_TIMEOUT": "soon"], "IMAGEQUEUE_GENERATION_TIMEOUT"),
        (["IMAGEQUEUE_LEASE_SECONDS": "-5"], "IMAGEQUEUE_LEASE_SECONDS"),
        (["IMAGEQUEUE_ENHANCE_TIMEOUT": "0"], "IMAGEQUEUE_ENHANCE_TIMEOUT"),
        (["IMAGEQUEUE_GENERATION_ATTEMPTS": "0"], "IMAGEQUEUE_GENERATION_ATTEMPTS"),
        (["IMAGEQUEUE_MAX_IMAGE_BYTES": "12abc"], "IMAGEQUEUE_MAX_IMAGE_BYTES"),
        (["IMAGEQUEUE_PLACEHOLDER_DELAY": "-1"], "IMAGEQUEUE_PLACEHOLDER_DELAY"),
        (["IMAGEQUEUE_BACKEND": "cloudy"], "IMAGEQUEUE_BACKEND"),
        (["IMAGEQUEUE_RESULT_STORE": "bucket"], "IMAGEQUEUE_RESULT_STORE"),
        (["LLM_PROVIDER": "chatgpt"], "LLM_PROVIDER"),
        (["LLM_PROVIDER": "openrouter"], "OPENROUTER_API_KEY"),
        (["LLM_PROVIDER": "gemini"], "GEMINI_API_KEY"),
        (["IMAGEQUEUE_MODELS": "flux,SDXL-2"], "IMAGEQUEUE_MODELS"),
    ])
    func aBadSettingIsNamed(_ environment: [String: String], _ setting: String) throws {
        let error = #expect(throws: ConfigurationError.self) { try WorkerConfiguration.load(environment: environment) }
        #expect(error?.setting == setting)
        #expect(error?.description.hasPrefix(setting) == true)
        // The message names the setting, never its value (a model name may be quoted).
        if let value = environment[setting], value.count >= 5, setting != "IMAGEQUEUE_MODELS", !["http://", "https://"].contains(value) {
            #expect(error?.description.contains(value) == false, "\(error?.description ?? "")")
        }
    }

    @Test func aMissingLLMKeySaysWhyItIsNeeded() {
        let error = #expect(throws: ConfigurationError.self) {
            try WorkerConfiguration.load(environment: ["LLM_PROVIDER": "OpenRouter", "GEMINI_API_KEY": "g"])
        }
        #expect(error?.setting == "OPENROUTER_API_KEY")
        #expect(error?.reason.contains("LLM_PROVIDER=openrouter") == true)
    }

    @Test func valuesAreParsed() throws {
        let configuration = try WorkerConfiguration.load(environment: [
            "IMAGEQUEUE_GENERATION_TIMEOUT": "1.5", "IMAGEQUEUE_LEASE_SECONDS": "12", "IMAGEQUEUE_GENERATION_ATTEMPTS": "5",
            "IMAGEQUEUE_RESULT_STORE": "redis", "IMAGEQUEUE_BACKEND": "placeholder", "LLM_PROVIDER": "gemini",
            "GEMINI_API_KEY": "g-key", "IMAGEQUEUE_MODELS": "flux, sdxl ,kandinsky", "IMAGEQUEUE_MAX_IMAGE_BYTES": "1048576",
        ])
        #expect(configuration.generationTimeout == .milliseconds(1500))
        #expect(configuration.lease == .seconds(12))
        #expect(configuration.generationAttempts == 5)
        #expect(configuration.resultStore == .redis)
        #expect(configuration.backend == .placeholder)
        #expect(configuration.llmProvider == .gemini)
        #expect(configuration.geminiAPIKey == "g-key")
        #expect(configuration.queue.models == ["flux", "sdxl", "kandinsky"])
        #expect(configuration.maxImageBytes == 1_048_576)
        let defaults = try WorkerConfiguration.load(environment: [:])
        #expect(defaults.maxImageBytes == 20 * 1024 * 1024)
        #expect(defaults.llmProvider == .none)
    }

    @Test func aConfigFileIsReadAndTheEnvironmentWins() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("iq-config-\(UUID().uuidString).env").path
        let text = """
            # worker settings

            FLUX_WORKER_URL=http://file.example/flux
            SDXL_WORKER_URL = http://file.example/sdxl
            SDXL_API_KEY="from-file"
            IMAGEQUEUE_LEASE_SECONDS='7'
            GEMINI_MODEL=from-file-model
            IMAGEQUEUE_PREFIX=fileprefix
            OPENROUTER_MODEL=vendor/model=v2
            """
        try await offPool { try text.write(toFile: path, atomically: true, encoding: .utf8) }
        defer { try? FileManager.default.removeItem(atPath: path) }

        let environment = ["IMAGEQUEUE_CONFIG_FILE": path, "SDXL_API_KEY": "from-env", "FLUX_WORKER_URL": "http://env.example/flux",
                           "IMAGEQUEUE_PREFIX": ""]
        let configuration = try WorkerConfiguration.load(environment: environment)
        #expect(configuration.fluxURL == "http://env.example/flux")
        #expect(configuration.sdxlURL == "http://file.example/sdxl")
        #expect(configuration.sdxlAPIKey == "from-env")
        #expect(configuration.lease == .seconds(7))
        #expect(configuration.geminiModel == "from-file-model")
        #expect(configuration.queue.keyPrefix == "fileprefix", "an empty environment value does not hide the file's")
        #expect(configuration.openRouterModel == "vendor/model=v2")

        let explicit = try WorkerConfiguration.load(environment: [:], configFile: path)
        #expect(explicit.sdxlAPIKey == "from-file")
        #expect(explicit.fluxURL == "http://file.example/flux")
    }

    @Test func aBadConfigFileIsNamed() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("iq-config-\(UUID().uuidString).env").path
        try await offPool { try "FLUX_WORKER_URL=http://x.example/flux\nJUST_A_WORD\n".write(toFile: path, atomically: true, encoding: .utf8) }
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bad = #expect(throws: ConfigurationError.self) { try WorkerConfiguration.load(environment: ["IMAGEQUEUE_CONFIG_FILE": path]) }
        #expect(bad?.setting == "IMAGEQUEUE_CONFIG_FILE")
        #expect(bad?.reason.contains(":2:") == true, "names the line: \(bad?.reason ?? "")")

        let missing = #expect(throws: ConfigurationError.self) {
            try WorkerConfiguration.load(environment: [:], configFile: path + ".missing")
        }
        #expect(missing?.setting == "IMAGEQUEUE_CONFIG_FILE")
    }

    @Test func modelsWithoutAnEndpointAreSkippedWithAReason() throws {
        var configuration = WorkerConfiguration()
        configuration.fluxURL = "http://127.0.0.1:9/flux"
        var servable = configuration.servableModels(["flux", "sdxl", "kandinsky"])
        #expect(servable.table.names == ["flux"])
        #expect(servable.skipped.map(\.model) == ["sdxl", "kandinsky"])
        #expect(servable.skipped.first?.reason == "SDXL_WORKER_URL is not set")

        configuration.sdxlURL = "http://127.0.0.1:9/sdxl"
        servable = configuration.servableModels(["flux", "sdxl"])
        #expect(servable.table.names == ["flux"])
        #expect(servable.skipped.map(\.reason) == ["SDXL_API_KEY is not set"])

        configuration.sdxlAPIKey = "key"
        #expect(configuration.servableModels(["sdxl", "flux"]).table.names == ["flux", "sdxl"])

        var placeholder = WorkerConfiguration()
        placeholder.backend = .placeholder
        #expect(placeholder.servableModels(["flux", "sdxl"]).table.names == ["flux", "sdxl"])
    }

    @Test func aWorkerServesWhatItCanAndRefusesToServeNothing() throws {
        let redis = try RedisConfiguration(url: "redis://127.0.0.1:9")  // never contacted
        var configuration = WorkerConfiguration()
        configuration.resultStore = .redis
        configuration.fluxURL = "http://127.0.0.1:9/flux"

        let worker = try ImageWorker(configuration: configuration, redis: redis, models: ["flux", "sdxl"], workerID: "w",
                                     logger: testLogger)
        #expect(worker.models == ["flux"])
        #expect(worker.skipped.map(\.model) == ["sdxl"])
        #expect(worker.skipped.first?.reason == "SDXL_WORKER_URL is not set")

        let nothing = #expect(throws: ConfigurationError.self) {
            try ImageWorker(configuration: configuration, redis: redis, models: ["sdxl"], workerID: "w", logger: testLogger)
        }
        #expect(nothing?.setting == "--models")
        #expect(nothing?.reason.contains("SDXL_WORKER_URL is not set") == true)

        let unknown = #expect(throws: ConfigurationError.self) {
            try ImageWorker(configuration: configuration, redis: redis, models: ["kandinsky"], workerID: "w", logger: testLogger)
        }
        #expect(unknown?.setting == "--models")
    }
}

/// Durations below a millisecond.
struct WorkerConfigurationRoundingTests {
    // Found in the fuzzing work (docs/FUZZING.md): "0.0001" passed as positive, then became zero,
    // and a zero generation timeout is no timeout at all.
    @Test func aPositiveSettingBelowAMillisecondIsNotZero() throws {
        let configuration = try WorkerConfiguration.load(environment: [
            "IMAGEQUEUE_GENERATION_TIMEOUT": "0.0001", "IMAGEQUEUE_LEASE_SECONDS": "1e-9", "IMAGEQUEUE_RESULT_TTL": "0.0015",
        ])
        #expect(configuration.generationTimeout == .milliseconds(1))
        #expect(configuration.lease == .milliseconds(1))
        #expect(configuration.resultTTL == .milliseconds(2))
    }
}
