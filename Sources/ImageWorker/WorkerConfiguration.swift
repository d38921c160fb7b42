import FoundationEssentials
import ImageQueue

/// Everything a worker needs, as typed values. The command line reads them from environment
/// variables and an optional config file (`WorkerConfiguration.load` in ImageQueueCommandLine).
public struct WorkerConfiguration: Sendable {
    /// Which image backend runs the jobs.
    public enum Backend: String, Sendable {
        /// The real backends over HTTP: the models file's, or the seed's Flux/SDXL endpoints.
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
    /// How long a running job's preview image is kept in Redis.
    public var previewTTL: Duration = .seconds(600)
    /// Width and height of placeholder images, in pixels.
    public var placeholderSize = 512
    /// The key webhook signatures are made with (`IMAGEQUEUE_WEBHOOK_SECRET`); without it the
    /// worker delivers no webhooks (they wait in the outbox for a worker that has it).
    public var webhookSecret: String?
    /// How long after its first attempt a webhook delivery is retried (`IMAGEQUEUE_WEBHOOK_RETRY_HOURS`).
    public var webhookRetryWindow: Duration = .seconds(24 * 3600)
    /// The longest one webhook POST may take, connecting included (`IMAGEQUEUE_WEBHOOK_TIMEOUT`).
    public var webhookTimeout: Duration = .seconds(10)
    /// How long a claimed delivery stays this worker's: three timeouts (30 s by default). If
    /// the worker dies mid-delivery, another takes the delivery once this has passed.
    public var webhookLease: Duration { max(webhookTimeout * 3, .seconds(1)) }

    public init() {}

    /// The models file's table (`IMAGEQUEUE_MODELS_FILE`); nil: the seed's variables
    /// (`FLUX_WORKER_URL`, `SDXL_WORKER_URL`, `SDXL_API_KEY`) describe flux and sdxl.
    public var modelTable: ModelTable?

    /// The backends of the requested models this worker can serve, and the models it cannot
    /// (with why): with `--backend placeholder` every model is the placeholder's.
    public func servableModels(_ requested: [String]) -> (table: ModelTable, skipped: [(model: String, reason: String)]) {
        if backend == .placeholder {
            return (ModelTable(models: requested.map { ModelSpec(name: $0, backend: .placeholder) }, file: modelTable?.file), [])
        }
        guard let modelTable else {
            return ModelTable.fromSeedVariables(names: requested, fluxURL: fluxURL, sdxlURL: sdxlURL, sdxlAPIKey: sdxlAPIKey, placeholder: false)
        }
        var serve: [ModelSpec] = []
        var skipped: [(String, String)] = []
        for name in requested {
            if let spec = modelTable[name] { serve.append(spec) } else { skipped.append((name, "not in \(modelTable.file ?? "the models file")")) }
        }
        return (ModelTable(models: serve, file: modelTable.file), skipped)
    }
}
