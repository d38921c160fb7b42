import ImageQueue
import ImageWorker

extension WorkerConfiguration {
    /// Reads a worker's settings from `environment` (and `IMAGEQUEUE_CONFIG_FILE` or
    /// `configFile`, if any), through `Settings`.
    /// - Throws: `ConfigurationError` naming the bad setting.
    public static func load(environment: [String: String], configFile: String? = nil) throws(ConfigurationError) -> WorkerConfiguration {
        try WorkerConfiguration(settings: Settings.load(environment: environment, configFile: configFile))
    }

    /// A worker's typed settings.
    /// - Throws: `ConfigurationError` naming the bad setting.
    public init(settings: Settings) throws(ConfigurationError) {
        self.init()
        if let prefix = settings["IMAGEQUEUE_PREFIX"] { queue.keyPrefix = prefix }
        if let models = settings["IMAGEQUEUE_MODELS"] { queue.models = models.split(separator: ",").map { $0.trimmingWhitespace() } }
        if let length = try settings.integer("IMAGEQUEUE_MAX_PROMPT_LENGTH", 1...100_000) { queue.maxPromptLength = length }
        if let backend = try settings.choice("IMAGEQUEUE_BACKEND", Backend.self, reason: "must be http or placeholder") {
            self.backend = backend
        }
        fluxURL = try settings.url("FLUX_WORKER_URL")
        sdxlURL = try settings.url("SDXL_WORKER_URL")
        sdxlAPIKey = settings["SDXL_API_KEY"]
        if let file = settings["IMAGEQUEUE_MODELS_FILE"] {
            let table = try ModelTable.load(file: file, environment: settings.values, requireKeys: true)
            modelTable = table
            queue.models = table.names
        }
        if let provider = try settings.choice("LLM_PROVIDER", LLMProvider.self, lowercased: true,
                                              reason: "must be openrouter, gemini or none") {
            llmProvider = provider
        }
        openRouterAPIKey = settings["OPENROUTER_API_KEY"]
        if let base = try settings.url("OPENROUTER_BASE_URL") { openRouterBaseURL = base }
        if let model = settings["OPENROUTER_MODEL"] { openRouterModel = model }
        geminiAPIKey = settings["GEMINI_API_KEY"]
        if let base = try settings.url("GEMINI_BASE_URL") { geminiBaseURL = base }
        if let model = settings["GEMINI_MODEL"] { geminiModel = model }
        if llmProvider == .openrouter, openRouterAPIKey == nil {
            throw ConfigurationError(setting: "OPENROUTER_API_KEY", reason: "is required when LLM_PROVIDER=openrouter")
        }
        if llmProvider == .gemini, geminiAPIKey == nil {
            throw ConfigurationError(setting: "GEMINI_API_KEY", reason: "is required when LLM_PROVIDER=gemini")
        }
        if let directory = settings["IMAGEQUEUE_OUTPUT_DIR"] { outputDirectory = directory }
        if let store = try settings.choice("IMAGEQUEUE_RESULT_STORE", ResultStoreKind.self, reason: "must be directory or redis") {
            resultStore = store
        }
        if let ttl = try settings.seconds("IMAGEQUEUE_RESULT_TTL") { resultTTL = ttl }
        if let timeout = try settings.seconds("IMAGEQUEUE_ENHANCE_TIMEOUT") { enhancementTimeout = timeout }
        if let timeout = try settings.seconds("IMAGEQUEUE_GENERATION_TIMEOUT") { generationTimeout = timeout }
        if let bytes = try settings.integer("IMAGEQUEUE_MAX_IMAGE_BYTES", 1024...1_073_741_824) { maxImageBytes = bytes }
        if let length = try settings.integer("IMAGEQUEUE_MAX_ENHANCED_LENGTH", 20...100_000) { maxEnhancedPromptLength = length }
        if let attempts = try settings.integer("IMAGEQUEUE_GENERATION_ATTEMPTS", 1...20) { generationAttempts = attempts }
        if let delay = try settings.seconds("IMAGEQUEUE_RETRY_BASE_DELAY") { retryBaseDelay = delay }
        if let delay = try settings.seconds("IMAGEQUEUE_RETRY_MAX_DELAY") { retryMaxDelay = delay }
        if let lease = try settings.seconds("IMAGEQUEUE_LEASE_SECONDS") { self.lease = lease }
        if let grace = try settings.seconds("IMAGEQUEUE_GRACE_SECONDS") { self.grace = grace }
        if let delay = settings["IMAGEQUEUE_PLACEHOLDER_DELAY"] {
            guard let number = Double(delay), number >= 0, number < 3600 else {
                throw ConfigurationError(setting: "IMAGEQUEUE_PLACEHOLDER_DELAY", reason: "must be a number of seconds >= 0")
            }
            placeholderDelay = .milliseconds(Int64(number * 1000))
        }
        if let size = try settings.integer("IMAGEQUEUE_PLACEHOLDER_SIZE", 8...4096) { placeholderSize = size }
        webhookSecret = settings["IMAGEQUEUE_WEBHOOK_SECRET"]
        if let text = settings["IMAGEQUEUE_WEBHOOK_RETRY_HOURS"] {
            guard let hours = Double(text), hours >= 0, hours <= 8760 else {
                throw ConfigurationError(setting: "IMAGEQUEUE_WEBHOOK_RETRY_HOURS", reason: "must be a number of hours from 0 to 8760")
            }
            webhookRetryWindow = .milliseconds(Int64((hours * 3_600_000).rounded(.up)))
        }
        if let timeout = try settings.seconds("IMAGEQUEUE_WEBHOOK_TIMEOUT") { webhookTimeout = timeout }
        if let hosts = settings["IMAGEQUEUE_WEBHOOK_ALLOW_HOSTS"] { queue.webhookAllowHosts = WebhookTarget.allowList(hosts) }
        do {
            try queue.validate()
        } catch {
            throw ConfigurationError(setting: "IMAGEQUEUE_MODELS", reason: error.message)
        }
    }
}
