import ArgumentParser
import ImageQueue
import ImageWorker
import RedisClient
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// The worker's options and its run, shared by `imagequeue worker` and the lean
/// `imagequeue-worker` executable (the same process without the server's and the Telegram
/// front's code, so an idle worker maps less).
public struct WorkerOptions: ParsableArguments {
    public static let abstract = "Claim and run jobs: enhance the prompt, generate the image, store it."
    public static let discussion = """
        Settings come from the environment (or --config FILE with KEY=VALUE lines): IMAGEQUEUE_MODELS_FILE \
        (a JSON table of models and their backends: flux-worker, sdxl-worker, workers-ai, a1111, comfyui, openai, \
        placeholder), or the seed's shorthand FLUX_WORKER_URL, \
        SDXL_WORKER_URL, SDXL_API_KEY, LLM_PROVIDER (openrouter|gemini|none), OPENROUTER_API_KEY, \
        OPENROUTER_BASE_URL, OPENROUTER_MODEL, GEMINI_API_KEY, GEMINI_BASE_URL, GEMINI_MODEL, \
        IMAGEQUEUE_OUTPUT_DIR, IMAGEQUEUE_RESULT_STORE (directory|redis), IMAGEQUEUE_RESULT_TTL, \
        IMAGEQUEUE_GENERATION_TIMEOUT, IMAGEQUEUE_ENHANCE_TIMEOUT, IMAGEQUEUE_MAX_IMAGE_BYTES, \
        IMAGEQUEUE_GENERATION_ATTEMPTS; webhooks (docs/WEBHOOKS.md): IMAGEQUEUE_WEBHOOK_SECRET, \
        IMAGEQUEUE_WEBHOOK_RETRY_HOURS, IMAGEQUEUE_WEBHOOK_TIMEOUT, IMAGEQUEUE_WEBHOOK_ALLOW_HOSTS. SIGTERM/SIGINT: stop claiming, let jobs in flight finish \
        within the grace period, then release them to the head of their queue.
        """

    public init() {}

    @OptionGroup var global: GlobalOptions

    @Option(help: "Comma-separated models to serve (default: every model of IMAGEQUEUE_MODELS_FILE, else flux,sdxl).")
    var models: String?

    @Option(help: "This worker's id (default: <host>:<pid>).")
    var id: String?

    @Option(help: "http (the real endpoints) or placeholder (offline images, no keys).")
    var backend: String?

    @Option(name: .customLong("output-dir"), help: "Where the directory result store writes images.")
    var outputDirectory: String?

    @Option(name: .customLong("lease-seconds"), help: "Lease per job; heartbeats extend it every third.")
    var leaseSeconds: Double?

    @Option(name: .customLong("grace-seconds"), help: "On shutdown, time for jobs in flight to finish.")
    var graceSeconds: Double?

    @Option(name: .customLong("metrics-port"), help: "Serve Prometheus /metrics and /healthz on this port.")
    var metricsPort: Int?

    @Option(name: .customLong("metrics-host"), help: "The address /metrics listens on.")
    var metricsHost = "0.0.0.0"

    @Option(help: "Jobs of each model this process runs at once (the model's cluster-wide limit still applies).")
    var concurrency = 1

    @Option(help: "A file of KEY=VALUE settings (the environment wins).")
    var config: String?

    public func validate() throws {
        // Ranges, not one-sided checks: nan, inf and 1e300 passed those and then trapped when
        // converted to milliseconds.
        if let leaseSeconds, !(1..<1e7).contains(leaseSeconds) { throw ValidationError("--lease-seconds must be at least 1 and less than 10000000") }
        if let graceSeconds, !(0..<1e7).contains(graceSeconds) { throw ValidationError("--grace-seconds must be at least 0 and less than 10000000") }
        if let metricsPort, !(1...65535).contains(metricsPort) { throw ValidationError("--metrics-port must be a port number") }
        if !(1...1000).contains(concurrency) { throw ValidationError("--concurrency must be from 1 to 1000") }
        if let backend, WorkerConfiguration.Backend(rawValue: backend) == nil {
            throw ValidationError("--backend must be http or placeholder")
        }
    }

    public func run() async throws {
        var configuration = try loadConfiguration()
        if let backend { configuration.backend = WorkerConfiguration.Backend(rawValue: backend) ?? .http }
        if let outputDirectory { configuration.outputDirectory = outputDirectory }
        if let leaseSeconds { configuration.lease = .milliseconds(Int64(leaseSeconds * 1000)) }
        if let graceSeconds { configuration.grace = .milliseconds(Int64(graceSeconds * 1000)) }
        let logger = Logger(label: "imagequeue.worker")
        let worker = try makeWorker(configuration, logger: logger)
        try await GlobalOptions.verifyRedis(redisConfiguration(), tolerateUnreachable: true)

        var services = worker.services
        if let metricsPort {
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            services.insert(MetricsServer(registry: registry, metrics: worker.metrics, host: metricsHost, port: metricsPort, logger: logger), at: 0)
        }
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    func loadConfiguration() throws -> WorkerConfiguration {
        var configuration = try WorkerConfiguration.load(environment: Settings.process.values, configFile: config)
        configuration.queue = try global.queueConfiguration()
        // The models file may be named in the config file, which the queue settings do not read.
        if let table = configuration.modelTable { configuration.queue.models = table.names }
        return configuration
    }

    /// The Redis settings from the flags, the environment and the config file (the
    /// environment wins): the URL, TLS, Sentinel and WAIT settings may live in the file too.
    func redisConfiguration() throws -> RedisConfiguration {
        try global.redisConfiguration(clientName: "imagequeue-worker",
                                      settings: Settings.load(environment: Settings.process.values, configFile: config))
    }

    func makeWorker(_ configuration: WorkerConfiguration, logger: Logger) throws -> ImageWorker {
        let requested = (models ?? configuration.modelTable?.names.joined(separator: ",") ?? "flux,sdxl")
            .split(separator: ",").map { $0.trimmingWhitespace() }
        let workerID = id ?? "\(hostName()):\(getpid())"
        let worker = try ImageWorker(configuration: configuration, redis: redisConfiguration(),
                                     models: requested, workerID: workerID, slotsPerModel: concurrency, logger: logger)
        if configuration.backend == .placeholder {
            Output.error("worker \(workerID) serving \(worker.models.joined(separator: ", ")) with the placeholder backend (offline images)")
        } else {
            let backends = worker.models.compactMap { worker.table[$0] }.map { "\($0.name) (\($0.backend.rawValue)\($0.urls.count > 1 ? ", \($0.urls.count) URLs" : ""))" }
            Output.error("worker \(workerID) serving \(backends.joined(separator: ", ")) with the http backend")
        }
        for (model, reason) in worker.skipped { Output.error("not serving \(model): \(reason)") }
        return worker
    }
}

public func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, 255)
    return String(cString: buffer)
}
