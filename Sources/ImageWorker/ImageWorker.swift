import CurlHTTP
import ImageQueue
import Logging
import RedisClient
import ServiceLifecycle

/// A stateless worker process's parts, composed: claim loops per model, the processor
/// (enhancer, generator, result store), and the maintenance chores. `services` go into a
/// `ServiceGroup`, which turns SIGTERM/SIGINT into a graceful shutdown.
public final class ImageWorker: Sendable {
    /// This worker's id (recorded on the jobs it claims and in the registry).
    public let workerID: String
    /// The models it serves (those whose backend is configured).
    public let models: [String]
    /// Models asked for but not served, and why.
    public let skipped: [(model: String, reason: String)]
    /// The backends of the served models.
    public let table: ModelTable
    /// The worker's metrics.
    public let metrics: WorkerMetrics
    let queue: WorkerQueue
    let redis: any RedisClientProtocol
    /// The webhook outbox's connections (WebhookLoops).
    let outbox: WebhookOutbox
    let configuration: WorkerConfiguration
    let processor: JobProcessor
    let store: any ResultStore
    let currentJobs = CurrentJobs()
    let slotsPerModel: Int
    let logger: Logger

    /// Builds a worker.
    /// - Throws: `ConfigurationError` when a setting cannot be used or no model can be served.
    public init(configuration: WorkerConfiguration, redis redisConfiguration: RedisConfiguration, models requested: [String],
                workerID: String, slotsPerModel: Int = 1, logger: Logger) throws(ConfigurationError) {
        for model in requested where !configuration.queue.models.contains(model) {
            throw ConfigurationError(setting: "--models", reason: "names unknown model '\(model)' (configured: \(configuration.queue.models.joined(separator: ", ")))")
        }
        let (table, skipped) = configuration.servableModels(requested)
        let serve = requested.filter { table[$0] != nil }
        guard !serve.isEmpty else {
            throw ConfigurationError(setting: "--models", reason: "leaves nothing to serve: " + skipped.map { "\($0.model): \($0.reason)" }.joined(separator: "; "))
        }
        var logger = logger
        logger[metadataKey: "worker.id"] = "\(workerID)"
        self.logger = logger
        self.workerID = workerID
        self.models = serve
        self.skipped = skipped
        self.configuration = configuration
        self.slotsPerModel = max(1, slotsPerModel)
        metrics = WorkerMetrics()
        queue = WorkerQueue(redis: redisConfiguration, configuration: configuration.queue, workerID: workerID,
                            blockTimeout: .seconds(5), logger: logger)
        redis = makeRedisClient(configuration: redisConfiguration, logger: logger)
        outbox = WebhookOutbox(redis: redisConfiguration, configuration: configuration.queue, logger: logger)

        let http = HTTPClient()
        let enhancer: any PromptEnhancer
        switch (configuration.backend, configuration.llmProvider) {
        case (.placeholder, _):
            enhancer = PlaceholderEnhancer(maxLength: configuration.maxEnhancedPromptLength)
        case (.http, .openrouter):
            enhancer = OpenRouterEnhancer(http: http, baseURL: configuration.openRouterBaseURL,
                                          apiKey: configuration.openRouterAPIKey ?? "", model: configuration.openRouterModel,
                                          timeout: configuration.enhancementTimeout, connectTimeout: configuration.connectTimeout,
                                          maxLength: configuration.maxEnhancedPromptLength)
        case (.http, .gemini):
            enhancer = GeminiEnhancer(http: http, baseURL: configuration.geminiBaseURL, apiKey: configuration.geminiAPIKey ?? "",
                                      model: configuration.geminiModel, timeout: configuration.enhancementTimeout,
                                      connectTimeout: configuration.connectTimeout,
                                      maxLength: configuration.maxEnhancedPromptLength)
        case (.http, .none):
            enhancer = NoEnhancer()
        }
        self.table = table
        let generator = ModelRouter.make(table, http: http, configuration: configuration, logger: logger)
        switch configuration.resultStore {
        case .directory:
            store = try DirectoryResultStore(directory: configuration.outputDirectory, ttl: configuration.resultTTL)
        case .redis:
            store = RedisResultStore(redis: redis, keys: configuration.queue.keys, ttl: configuration.resultTTL, logger: logger)
        }
        processor = JobProcessor(queue: queue, enhancer: enhancer, generator: generator, store: store,
                                 configuration: configuration, metrics: metrics, logger: logger,
                                 completions: CompletionBatcher(queue: queue))
    }

    deinit {
        queue.close()
        redis.close()
        outbox.close()
    }

    /// The worker's services, for a `ServiceGroup`: its Redis connections first and the claim
    /// loops last, so a graceful shutdown stops the loops first, deregisters afterwards, and
    /// closes the connections once nothing uses them.
    public var services: [any Service] {
        [ClientsService([queue, redis, outbox]),
         Maintenance(queue: queue, registry: WorkerRegistry(redis: redis, keys: configuration.queue.keys), models: models, workerID: workerID, store: store,
                     currentJobs: currentJobs, configuration: configuration, logger: logger),
         WebhookLoops(outbox: outbox, http: HTTPClient(), models: models, configuration: configuration, metrics: metrics, logger: logger),
         ClaimLoops(queue: queue, processor: processor, models: models, slotsPerModel: slotsPerModel,
                    configuration: configuration, metrics: metrics, currentJobs: currentJobs, logger: logger)]
    }
}
