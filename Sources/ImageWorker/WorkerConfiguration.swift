import FoundationEssentials
import ImageQueue

/// Everything a worker needs, read from environment variables and an optional config file
/// (`KEY=VALUE` lines with the same names; the environment wins), validated at start.
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

    /// Reads settings from `environment` (and `IMAGEQUEUE_CONFIG_FILE` or `configFile`, if any).
    /// - Throws: `ConfigurationError` naming the bad setting.
    public static func load(environment: [String: String], configFile: String? = nil) throws(ConfigurationError) -> WorkerConfiguration {
        var values: [String: String] = [:]
        if let path = configFile ?? environment["IMAGEQUEUE_CONFIG_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            values = try parseConfigFile(path)
        }
        for (key, value) in environment where !value.isEmpty { values[key] = value }
        return try WorkerConfiguration(values: values)
    }

    /// Parses `KEY=VALUE` lines; `#` starts a comment; values may be quoted.
    static func parseConfigFile(_ path: String) throws(ConfigurationError) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(setting: "IMAGEQUEUE_CONFIG_FILE", "cannot read \(path)")
        }
        var values: [String: String] = [:]
        for (number, rawLine) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigurationError(setting: "IMAGEQUEUE_CONFIG_FILE", "\(path):\(number + 1): expected KEY=VALUE")
            }
            let key = line[..<equals].trimmingWhitespace()
            var value = line[line.index(after: equals)...].trimmingWhitespace()
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            values[key] = value
        }
        return values
    }

    init(values: [String: String]) throws(ConfigurationError) {
        func url(_ key: String) throws(ConfigurationError) -> String? {
            guard let value = values[key] else { return nil }
            guard value.hasPrefix("http://") || value.hasPrefix("https://"), value.count > 8 else {
                throw ConfigurationError(setting: key, "must be an http:// or https:// URL")
            }
            return value
        }
        func seconds(_ key: String) throws(ConfigurationError) -> Duration? {
            guard let value = values[key] else { return nil }
            guard let number = Double(value), number > 0, number < 1e7 else {
                throw ConfigurationError(setting: key, "must be a positive number of seconds")
            }
            // Rounded up: a positive setting below a millisecond must not become zero (a zero
            // timeout is no timeout at all, a zero lease expires at once).
            return .milliseconds(Int64((number * 1000).rounded(.up)))
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
            guard let value = values[key] else { return nil }
            guard let number = Int(value), range.contains(number) else {
                throw ConfigurationError(setting: key, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }

        if let prefix = values["IMAGEQUEUE_PREFIX"] { queue.keyPrefix = prefix }
        if let models = values["IMAGEQUEUE_MODELS"] { queue.models = models.split(separator: ",").map { $0.trimmingWhitespace() } }
        if let length = try integer("IMAGEQUEUE_MAX_PROMPT_LENGTH", 1...100_000) { queue.maxPromptLength = length }
        if let backend = values["IMAGEQUEUE_BACKEND"] {
            guard let parsed = Backend(rawValue: backend) else {
                throw ConfigurationError(setting: "IMAGEQUEUE_BACKEND", "must be http or placeholder")
            }
            self.backend = parsed
        }
        fluxURL = try url("FLUX_WORKER_URL")
        sdxlURL = try url("SDXL_WORKER_URL")
        sdxlAPIKey = values["SDXL_API_KEY"]
        if let provider = values["LLM_PROVIDER"] {
            guard let parsed = LLMProvider(rawValue: provider.lowercased()) else {
                throw ConfigurationError(setting: "LLM_PROVIDER", "must be openrouter, gemini or none")
            }
            llmProvider = parsed
        }
        openRouterAPIKey = values["OPENROUTER_API_KEY"]
        if let base = try url("OPENROUTER_BASE_URL") { openRouterBaseURL = base }
        if let model = values["OPENROUTER_MODEL"] { openRouterModel = model }
        geminiAPIKey = values["GEMINI_API_KEY"]
        if let base = try url("GEMINI_BASE_URL") { geminiBaseURL = base }
        if let model = values["GEMINI_MODEL"] { geminiModel = model }
        if llmProvider == .openrouter, openRouterAPIKey == nil {
            throw ConfigurationError(setting: "OPENROUTER_API_KEY", "is required when LLM_PROVIDER=openrouter")
        }
        if llmProvider == .gemini, geminiAPIKey == nil {
            throw ConfigurationError(setting: "GEMINI_API_KEY", "is required when LLM_PROVIDER=gemini")
        }
        if let directory = values["IMAGEQUEUE_OUTPUT_DIR"] { outputDirectory = directory }
        if let store = values["IMAGEQUEUE_RESULT_STORE"] {
            guard let parsed = ResultStoreKind(rawValue: store) else {
                throw ConfigurationError(setting: "IMAGEQUEUE_RESULT_STORE", "must be directory or redis")
            }
            resultStore = parsed
        }
        if let ttl = try seconds("IMAGEQUEUE_RESULT_TTL") { resultTTL = ttl }
        if let timeout = try seconds("IMAGEQUEUE_ENHANCE_TIMEOUT") { enhancementTimeout = timeout }
        if let timeout = try seconds("IMAGEQUEUE_GENERATION_TIMEOUT") { generationTimeout = timeout }
        if let bytes = try integer("IMAGEQUEUE_MAX_IMAGE_BYTES", 1024...1_073_741_824) { maxImageBytes = bytes }
        if let length = try integer("IMAGEQUEUE_MAX_ENHANCED_LENGTH", 20...100_000) { maxEnhancedPromptLength = length }
        if let attempts = try integer("IMAGEQUEUE_GENERATION_ATTEMPTS", 1...20) { generationAttempts = attempts }
        if let delay = try seconds("IMAGEQUEUE_RETRY_BASE_DELAY") { retryBaseDelay = delay }
        if let delay = try seconds("IMAGEQUEUE_RETRY_MAX_DELAY") { retryMaxDelay = delay }
        if let lease = try seconds("IMAGEQUEUE_LEASE_SECONDS") { self.lease = lease }
        if let grace = try seconds("IMAGEQUEUE_GRACE_SECONDS") { self.grace = grace }
        if let delay = values["IMAGEQUEUE_PLACEHOLDER_DELAY"] {
            guard let number = Double(delay), number >= 0, number < 3600 else {
                throw ConfigurationError(setting: "IMAGEQUEUE_PLACEHOLDER_DELAY", "must be a number of seconds >= 0")
            }
            placeholderDelay = .milliseconds(Int64(number * 1000))
        }
        if let size = try integer("IMAGEQUEUE_PLACEHOLDER_SIZE", 8...4096) { placeholderSize = size }
        do {
            try queue.validate()
        } catch {
            throw ConfigurationError(setting: "IMAGEQUEUE_MODELS", error.message)
        }
    }
}

/// A setting that cannot be used; the message names it and never shows its value.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    /// The environment variable or flag at fault.
    public let setting: String
    /// What is wrong with it.
    public let reason: String

    /// Creates an error for a setting.
    public init(setting: String, _ reason: String) {
        self.setting = setting
        self.reason = reason
    }

    public var description: String { "\(setting) \(reason)" }
}
