/// The queue's settings shared by producers and workers. Models are configuration, not
/// baked into the scripts.
public struct QueueConfiguration: Sendable {
    /// Prefix of every key; tests give each test its own.
    public var keyPrefix: String = "iq"
    /// The models jobs may be queued for.
    public var models: [String] = ["flux", "sdxl"]
    /// Longest prompt accepted, in characters.
    public var maxPromptLength: Int = 2000
    /// Per-user request limit shared by every producer; nil disables it.
    public var rateLimit: RateLimit? = RateLimit()
    /// Claims a job may have before it is dead-lettered.
    public var maxAttempts: Int = 3
    /// How long an idempotency key keeps returning its job.
    public var idempotencyTTL: Duration = .seconds(24 * 3600)
    /// How long a finished (completed or cancelled) job stays readable. Also how long a
    /// Redis at maxmemory takes to free the memory of the jobs it has finished.
    public var retention: Duration = .seconds(7 * 24 * 3600)
    /// Most jobs a model's queue may hold waiting; an enqueue past it is refused with
    /// `.queueFull` (nothing written). nil: no cap.
    public var maxPending: Int?
    /// Hosts a webhook URL may name although they are in a refused range (loopback, private,
    /// link-local, metadata): lowercased names or IP literals, as written in the URL (IPv6
    /// without brackets). From `IMAGEQUEUE_WEBHOOK_ALLOW_HOSTS`. See `WebhookTarget`.
    public var webhookAllowHosts: Set<String> = []

    /// A per-user sliding window.
    public struct RateLimit: Sendable, Equatable {
        /// Requests allowed per window.
        public var requests: Int
        /// The window's length.
        public var window: Duration

        /// Creates a limit; the default is the seed's 10 requests per 60 s.
        public init(requests: Int = 10, window: Duration = .seconds(60)) {
            self.requests = requests
            self.window = window
        }
    }

    /// The default configuration.
    public init() {}

    /// The keys for this configuration's prefix.
    public var keys: QueueKeys { QueueKeys(prefix: keyPrefix) }

    /// Whether `name` can be a model name: 1-32 of a-z, 0-9 and _ (no `-`, which ends the
    /// model part of a job id).
    public static func isValidModelName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 32 && name.utf8.allSatisfy { byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x5F
        }
    }

    /// Checks that `model` is one of the configured models.
    /// - Throws: `ImageQueueError` `.unknownModel`, naming the models there are.
    public func requireModel(_ model: String) throws(ImageQueueError) {
        guard models.contains(model) else {
            throw ImageQueueError(.unknownModel, "unknown model '\(model.prefix(40))'; choose one of: " + models.joined(separator: ", "))
        }
    }

    /// Checks the settings themselves.
    /// - Throws: `ImageQueueError` `.invalidRequest` naming the bad setting.
    public func validate() throws(ImageQueueError) {
        if models.isEmpty { throw ImageQueueError(.invalidRequest, "at least one model must be configured") }
        for model in models where !Self.isValidModelName(model) {
            throw ImageQueueError(.invalidRequest, "model name '\(model)' must be 1-32 characters of a-z, 0-9 and _")
        }
        if keyPrefix.isEmpty || keyPrefix.contains("{") || keyPrefix.contains("}") {
            throw ImageQueueError(.invalidRequest, "key prefix must be non-empty and hold no braces")
        }
        if maxPromptLength < 1 { throw ImageQueueError(.invalidRequest, "maximum prompt length must be at least 1") }
        if let maxPending, maxPending < 1 { throw ImageQueueError(.invalidRequest, "maximum pending jobs must be at least 1") }
        if retention < .milliseconds(1) { throw ImageQueueError(.invalidRequest, "retention must be at least 1 ms") }
        if maxAttempts < 1 { throw ImageQueueError(.invalidRequest, "maximum attempts must be at least 1") }
        if let rateLimit, rateLimit.requests < 1 || rateLimit.window <= .zero {
            throw ImageQueueError(.invalidRequest, "rate limit needs at least 1 request per positive window")
        }
    }
}
