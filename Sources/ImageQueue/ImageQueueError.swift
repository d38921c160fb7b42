import RedisClient

/// An error from the queue: a rejected request, a job in the wrong state, or Redis.
/// Its message is one line meant for the person who made the request, and never holds
/// a secret.
public struct ImageQueueError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public enum Code: String, Sendable {
        /// The model is not one of the configured models.
        case unknownModel = "unknown_model"
        /// The prompt is empty or only white space.
        case emptyPrompt = "empty_prompt"
        /// The prompt is longer than the configured maximum.
        case promptTooLong = "prompt_too_long"
        /// The prompt or user id holds control characters.
        case controlCharacters = "control_characters"
        /// No user id, or an unusable one.
        case invalidUser = "invalid_user"
        /// Some other field of the request is wrong (idempotency key, attempts...).
        case invalidRequest = "invalid_request"
        /// The text is not a job id.
        case invalidJobID = "invalid_job_id"
        /// The webhook URL is not an http(s) URL, or names a host in a refused range
        /// (loopback, private, link-local, metadata) that the allow-list does not name.
        case invalidWebhook = "invalid_webhook"
        /// The user made too many requests; see `retryAfter`.
        case rateLimited = "rate_limited"
        /// No such job (never existed, or expired).
        case notFound = "not_found"
        /// The job is no longer queued (it started or finished).
        case notQueued = "not_queued"
        /// The caller's fencing token is not the job's current one: someone else owns it.
        case staleToken = "stale_token"
        /// The job was cancelled while its worker ran it: the worker stops it (nothing of
        /// the refused call was recorded).
        case cancelled = "cancelled"
        /// Data in Redis that does not follow the protocol.
        case malformed = "malformed"
        /// Redis failed or could not be reached.
        case redis = "redis"
        /// Redis is at `maxmemory` and refuses new data: nothing was written. Workers still
        /// finish the jobs already queued, so it frees up by itself; see `retryAfter`.
        case redisFull = "redis_full"
        /// The model's backlog is at its cap (`IMAGEQUEUE_MAX_PENDING`): nothing was queued;
        /// see `retryAfter`.
        case queueFull = "queue_full"
        /// The change ran on the Redis master, but fewer replicas than asked
        /// (`RedisConfiguration.waitReplicas`) acknowledged it in time: a failover now could
        /// lose it. An enqueue answered so may or may not survive; a retry with the same
        /// idempotency key cannot queue it twice.
        case notReplicated = "not_replicated"
    }

    /// What went wrong.
    public let code: Code
    /// One line for the user.
    public let message: String
    /// The job concerned, when there is one.
    public var jobID: String?
    /// For `.rateLimited`, `.redisFull` and `.queueFull`: when the caller may try again.
    public var retryAfter: Duration?
    /// For `.redis` and `.redisFull`: the underlying error.
    public var redisError: RedisError?

    /// Creates an error.
    public init(_ code: Code, _ message: String, jobID: String? = nil) {
        self.code = code
        self.message = message
        self.jobID = jobID
    }

    /// Whether the request itself was wrong (the caller should change it, not retry it).
    public var isValidation: Bool {
        switch code {
        case .unknownModel, .emptyPrompt, .promptTooLong, .controlCharacters, .invalidUser, .invalidRequest, .invalidJobID,
             .invalidWebhook:
            true
        default:
            false
        }
    }

    public var description: String { message }

    /// How long a caller refused with `.redisFull` or `.queueFull` is told to wait.
    public static let fullRetryAfter: Duration = .seconds(30)

    /// Wraps a Redis failure. An `OOM` refusal becomes `.redisFull`, the one place where
    /// Redis's out-of-memory reply is recognised: every surface maps that code.
    static func redis(_ error: any Error, operation: String, jobID: String? = nil) -> ImageQueueError {
        if let queueError = error as? ImageQueueError { return queueError }
        let redisError = error as? RedisError ?? RedisError(.protocolError, "\(error)")
        var wrapped: ImageQueueError
        if redisError.isOutOfMemory {
            let refused = operation == "enqueue" || operation == "rate limit" ? "nothing was queued" : "\(operation) was refused, nothing changed"
            wrapped = ImageQueueError(.redisFull, "Redis is out of memory (maxmemory reached): \(refused); try again later", jobID: jobID)
            wrapped.retryAfter = fullRetryAfter
        } else {
            wrapped = ImageQueueError(.redis, "\(operation) failed: \(redisError.description)", jobID: jobID)
        }
        wrapped.redisError = redisError
        return wrapped
    }
}
