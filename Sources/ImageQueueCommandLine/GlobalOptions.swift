import ArgumentParser
import ImageQueue
import ImageWorker
import Logging
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// Options every command takes: where Redis is, and the queue's settings.
public struct GlobalOptions: ParsableArguments {
    public init() {}

    @Option(name: .customLong("redis"), help: "Redis URL: redis://[user:pass@]host:port[/db], rediss://… over TLS, unix:///path, redis+sentinel://[user:pass@]host1:port1,host2:port2/<master>[/db] for a master found through Redis Sentinel, or redis+cluster://[user:pass@]host1:port1,host2:port2 (rediss+cluster:// over TLS) for a Redis Cluster (default $IMAGEQUEUE_REDIS_URL, else redis://127.0.0.1:6379).")
    public var redisURL: String?

    @Option(name: .customLong("prefix"), help: "Key prefix (default $IMAGEQUEUE_PREFIX, else iq).")
    public var keyPrefix: String?

    /// The Redis connection settings, from the flags and `settings` (the environment, or for
    /// a worker the environment over its config file).
    /// - Throws: `RedisError` `.invalidURL`; `ConfigurationError` for a bad TLS, Sentinel or WAIT setting.
    public func redisConfiguration(clientName: String, settings: Settings = .process) throws -> RedisConfiguration {
        let url = redisURL ?? settings["IMAGEQUEUE_REDIS_URL"] ?? "redis://127.0.0.1:6379"
        var configuration = try RedisConfiguration(url: url, clientName: clientName)
        configuration.reconnectDeadline = .seconds(3)  // a CLI says "unreachable" quickly
        if let tls = try Self.tlsSettings(for: configuration, settings: settings) { configuration.useTLS(tls) }
        if let password = settings["IMAGEQUEUE_SENTINEL_PASSWORD"] {
            guard configuration.sentinel != nil else {
                throw ConfigurationError(setting: "IMAGEQUEUE_SENTINEL_PASSWORD", reason: "applies to redis+sentinel:// URLs only, and the Redis URL is \(configuration.endpointDescription)")
            }
            configuration.sentinel?.password = password
        }
        if let text = settings["IMAGEQUEUE_REDIS_WAIT_REPLICAS"] {
            guard let replicas = Int(text), (0...100).contains(replicas) else {
                throw ConfigurationError(setting: "IMAGEQUEUE_REDIS_WAIT_REPLICAS", reason: "must be a whole number of replicas from 0 to 100 (0 = no WAIT)")
            }
            configuration.waitReplicas = replicas
        }
        if let text = settings["IMAGEQUEUE_REDIS_WAIT_TIMEOUT"] {
            guard let milliseconds = Int(text), (1...60_000).contains(milliseconds) else {
                throw ConfigurationError(setting: "IMAGEQUEUE_REDIS_WAIT_TIMEOUT", reason: "must be a whole number of milliseconds from 1 to 60000")
            }
            configuration.waitTimeout = .milliseconds(milliseconds)
        }
        return configuration
    }

    /// `IMAGEQUEUE_REDIS_TLS_*` for a `rediss://` URL: nil when none is set.
    /// - Throws: `ConfigurationError` for one set beside a plaintext URL, a certificate
    ///   without its key (or the reverse), or a file that cannot be read.
    static func tlsSettings(for configuration: RedisConfiguration, settings: Settings) throws(ConfigurationError) -> RedisTLS? {
        let names = ["IMAGEQUEUE_REDIS_TLS_CA_FILE", "IMAGEQUEUE_REDIS_TLS_CERT_FILE", "IMAGEQUEUE_REDIS_TLS_KEY_FILE",
                     "IMAGEQUEUE_REDIS_TLS_SERVER_NAME"]
        let values = names.map { settings[$0] }
        guard let first = zip(names, values).first(where: { $0.1 != nil }) else { return nil }
        guard configuration.endpoint.tls != nil else {
            throw ConfigurationError(setting: first.0, reason: "applies to TLS only, and the Redis URL is \(configuration.endpointDescription): use rediss:// (or rediss+cluster://)")
        }
        for (name, value) in zip(names, values).prefix(3) {
            guard let path = value else { continue }
            guard access(path, R_OK) == 0 else { throw ConfigurationError(setting: name, reason: "cannot read \(path)") }
        }
        switch (values[1], values[2]) {
        case (_?, nil): throw ConfigurationError(setting: "IMAGEQUEUE_REDIS_TLS_KEY_FILE", reason: "is needed with IMAGEQUEUE_REDIS_TLS_CERT_FILE (mutual TLS takes a certificate and its key)")
        case (nil, _?): throw ConfigurationError(setting: "IMAGEQUEUE_REDIS_TLS_CERT_FILE", reason: "is needed with IMAGEQUEUE_REDIS_TLS_KEY_FILE (mutual TLS takes a certificate and its key)")
        default: break
        }
        return RedisTLS(caFile: values[0], certificateFile: values[1], keyFile: values[2], serverName: values[3])
    }

    /// The queue settings from flags and environment (`Settings.process`).
    /// - Throws: `ConfigurationError` naming the bad setting.
    public func queueConfiguration() throws -> QueueConfiguration {
        var configuration = QueueConfiguration()
        if let prefix = keyPrefix ?? Settings.process["IMAGEQUEUE_PREFIX"] { configuration.keyPrefix = prefix }
        if let file = Settings.process["IMAGEQUEUE_MODELS_FILE"] {
            // Producers take the names only; the keys are the workers' business.
            configuration.models = try ModelTable.load(file: file, environment: Settings.process.values, requireKeys: false).names
        } else if let models = Settings.process["IMAGEQUEUE_MODELS"] {
            configuration.models = models.split(separator: ",").map { $0.trimmingWhitespace() }
        }
        if let text = Settings.process["IMAGEQUEUE_MAX_PROMPT_LENGTH"] {
            guard let value = Int(text), value > 0 else { throw ConfigurationError(setting: "IMAGEQUEUE_MAX_PROMPT_LENGTH", reason: "must be a positive number") }
            configuration.maxPromptLength = value
        }
        if let text = Settings.process["IMAGEQUEUE_RATE_LIMIT"] {
            if text == "off" {
                configuration.rateLimit = nil
            } else {
                let parts = text.split(separator: "/")
                // The window has the bounds of the worker's durations: "10/inf" or "10/1e300"
                // would trap converting to milliseconds.
                guard parts.count == 2, let requests = Int(parts[0]), let seconds = Double(parts[1]), requests > 0,
                      seconds > 0, seconds < 1e7 else {
                    throw ConfigurationError(setting: "IMAGEQUEUE_RATE_LIMIT", reason: "must be REQUESTS/SECONDS (e.g. 10/60; seconds less than 10000000) or off")
                }
                configuration.rateLimit = .init(requests: requests, window: .milliseconds(Int64((seconds * 1000).rounded(.up))))
            }
        }
        if let text = Settings.process["IMAGEQUEUE_MAX_ATTEMPTS"] {
            guard let value = Int(text), value > 0 else { throw ConfigurationError(setting: "IMAGEQUEUE_MAX_ATTEMPTS", reason: "must be a positive number") }
            configuration.maxAttempts = value
        }
        if let text = Settings.process["IMAGEQUEUE_RETENTION"] {
            guard let seconds = Double(text), seconds > 0, seconds < 1e9 else {
                throw ConfigurationError(setting: "IMAGEQUEUE_RETENTION", reason: "must be a positive number of seconds (how long finished jobs stay readable)")
            }
            configuration.retention = .milliseconds(Int64((seconds * 1000).rounded(.up)))
        }
        if let text = Settings.process["IMAGEQUEUE_MAX_PENDING"] {
            guard let value = Int(text), value >= 0 else {
                throw ConfigurationError(setting: "IMAGEQUEUE_MAX_PENDING", reason: "must be a whole number of queued jobs per model (0 = no cap)")
            }
            configuration.maxPending = value > 0 ? value : nil
        }
        if let hosts = Settings.process["IMAGEQUEUE_WEBHOOK_ALLOW_HOSTS"] {
            configuration.webhookAllowHosts = WebhookTarget.allowList(hosts)
        }
        do {
            try configuration.validate()
        } catch {
            // The models and the prefix are the settings the checks above leave to validate.
            let setting = error.message.hasPrefix("key prefix") ? (keyPrefix != nil ? "--prefix" : "IMAGEQUEUE_PREFIX") : "IMAGEQUEUE_MODELS"
            throw ConfigurationError(setting: setting, reason: error.message)
        }
        return configuration
    }

    /// Runs `body` with a producer client whose connection has passed
    /// `ImageQueueClient.verifyServer` (on that same connection: a command connects once);
    /// the client lives while `body` runs.
    /// - Throws: `CommandFailure`, `RedisError` (exit 2 for refused credentials or a server
    ///   of another kind than the URL says, see `CommandRunner`); what `body` throws.
    public func withClient<Result>(isolation: isolated (any Actor)? = #isolation,
                                   _ body: (ImageQueueClient) async throws -> Result) async throws -> Result {
        try await ImageQueueClient.with(redis: redisConfiguration(clientName: "imagequeue-cli"),
                                        configuration: queueConfiguration()) { client in
            try await client.verifyServer()
            return try await body(client)
        }
    }

    /// Checks Redis before a command or a service starts: credentials refused, or a server
    /// of another kind than the URL says (a Cluster node behind `redis://`), stop the process
    /// with one line and exit 2 (`CommandRunner`) instead of failing every command later.
    /// - Parameter tolerateUnreachable: services (worker, serve, telegram) start while Redis
    ///   is down and wait for it: for them only those two answers count, and the check tries
    ///   once. Commands report an unreachable Redis too (they check through `client()`).
    /// - Throws: `RedisError`.
    public static func verifyRedis(_ configuration: RedisConfiguration, tolerateUnreachable: Bool) async throws {
        var probe = configuration
        if tolerateUnreachable { probe.reconnectDeadline = .zero }
        let connection = makeRedisClient(configuration: probe, logger: Logger(label: "imagequeue.verify") { _ in SwiftLogNoOpLogHandler() })
        do {
            try await withRunning([connection]) { try await connection.verifyEndpoint() }
        } catch let error as RedisError where error.isSetupError {
            throw error
        } catch where tolerateUnreachable {
            return  // the service's own connections wait for Redis and report what they meet
        }
    }
}
