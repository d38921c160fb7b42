import FoundationEssentials
import ImageQueue

/// Everything a worker needs, as typed values. The command line reads them from environment
/// variables and an optional config file (`WorkerConfiguration.load` in ImageQueueCommandLine).
public struct WorkerConfiguration: Sendable {
    /// Which image backend runs the jobs.
    public enum Backend: String, Sendable {
        /// The real Flux/SDXL endpoints over HTTP.
        case http
        /// An offline renderer and enhancer: no network, no keys (what `demo` uses when no
        /// endpoint is configured).
        case placeholder
    }

    /// Which LLM improves prompts.
    public enum LLMProvider: String, Sendable {
        case openrouter, gemini, none
    }

    /// Where results are written.
    public enum ResultStoreKind: String, Sendable {
        /// `<output dir>/<model>/<job id>.<ext>`, for producers on the same host or share.
        case directory
        /// The bytes in Redis under a TTL, for producers on other hosts.
        case redis
    }

    public var queue = QueueConfiguration()
    public var backend: Backend = .http
    public var fluxURL: String?
    public var sdxlURL: String?
    public var sdxlAPIKey: String?
    public var llmProvider: LLMProvider = .none
    public var openRouterAPIKey: String?
    public var openRouterBaseURL = "https://openrouter.ai/api/v1"
    public var openRouterModel = "google/gemini-2.0-flash-exp"
    public var geminiAPIKey: String?
    public var geminiBaseURL = "https://generativelanguage.googleapis.com"
    public var geminiModel = "gemini-2.0-flash"
    public var outputDirectory = "imagequeue-output"
    public var resultStore: ResultStoreKind = .directory
    /// How long results (files or Redis blobs) are kept.
    public var resultTTL: Duration = .seconds(24 * 3600)
    public var enhancementTimeout: Duration = .seconds(30)
    public var generationTimeout: Duration = .seconds(120)
    public var connectTimeout: Duration = .seconds(10)
    public var maxImageBytes = 20 * 1024 * 1024
    /// Longest enhanced prompt kept (longer answers are cut at a word boundary).
    public var maxEnhancedPromptLength = 1000
    /// Tries per job at the backend (transient failures), with backoff between them.
    public var generationAttempts = 3
    public var retryBaseDelay: Duration = .seconds(1)
    public var retryMaxDelay: Duration = .seconds(30)
    public var lease: Duration = .seconds(30)
    public var grace: Duration = .seconds(30)
    /// Delay the placeholder backend waits per image (to make progress visible in a demo).
    public var placeholderDelay: Duration = .zero
    /// Width and height of placeholder images, in pixels.
    public var placeholderSize = 512

    public init() {}

    /// The models this worker can serve: with the http backend, those whose endpoint is set.
    public func servableModels(_ requested: [String]) -> (serve: [String], skipped: [(model: String, reason: String)]) {
        guard backend == .http else { return (requested, []) }
        var serve: [String] = []
        var skipped: [(String, String)] = []
        for model in requested {
            switch model {
            case "flux" where fluxURL == nil: skipped.append((model, "FLUX_WORKER_URL is not set"))
            case "sdxl" where sdxlURL == nil: skipped.append((model, "SDXL_WORKER_URL is not set"))
            case "sdxl" where sdxlAPIKey == nil: skipped.append((model, "SDXL_API_KEY is not set"))
            case "flux", "sdxl": serve.append(model)
            default: skipped.append((model, "no HTTP backend is known for this model"))
            }
        }
        return (serve, skipped)
    }
}
