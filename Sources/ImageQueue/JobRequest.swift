/// The order in which a model's queued jobs are claimed: every `high` job first, then
/// `normal`, then `low`; within a level, in enqueue order.
public enum JobPriority: String, Sendable, Equatable, Codable, CaseIterable {
    case high, normal, low

    /// The level's offset in the pending queue's score (`seq + offset`): a `normal` job is
    /// scored by its sequence alone, as every job was before priorities, so jobs queued by an
    /// older producer keep their place. Sequences stay below 1e15, so the levels never mix
    /// and every score is an exact integer in a double.
    public var scoreOffset: Int64 {
        switch self {
        case .high: -1_000_000_000_000_000
        case .normal: 0
        case .low: 1_000_000_000_000_000
        }
    }
}

/// What a producer asks for: one to four images from one prompt.
public struct JobRequest: Sendable, Equatable {
    /// The model to run (`flux`, `sdxl`, or another configured one).
    public var model: String
    /// The user's prompt.
    public var prompt: String
    /// Who asked: the rate limit counts per user.
    public var user: String
    /// Whether the worker improves the prompt with an LLM first.
    public var enhance: Bool
    /// A key that makes retries of the same request return the first job.
    public var idempotencyKey: String?
    /// Free-form data for the front end that waits for the result (e.g. a chat id).
    public var metadata: [String: String]
    /// Where it waits among the model's queued jobs (default `normal`).
    public var priority: JobPriority
    /// How many images to make from the prompt, 1 to `maxImageCount` (the protocol's `n`).
    public var imageCount: Int
    /// An `http`/`https` URL that receives the job's final event, signed (docs/WEBHOOKS.md).
    public var webhookURL: String?

    /// The most images one job may make.
    public static let maxImageCount = 4

    /// Creates a request.
    public init(model: String, prompt: String, user: String, enhance: Bool = true,
                idempotencyKey: String? = nil, metadata: [String: String] = [:],
                priority: JobPriority = .normal, imageCount: Int = 1, webhookURL: String? = nil) {
        self.model = model
        self.prompt = prompt
        self.user = user
        self.enhance = enhance
        self.idempotencyKey = idempotencyKey
        self.metadata = metadata
        self.priority = priority
        self.imageCount = imageCount
        self.webhookURL = webhookURL
    }

    /// Checks the request against the configuration before anything is written.
    /// - Throws: `ImageQueueError` with a validation code and a message naming the problem.
    public func validate(against configuration: QueueConfiguration) throws(ImageQueueError) {
        try configuration.requireModel(model)
        if prompt.unicodeScalars.allSatisfy({ $0.properties.isWhitespace }) {
            throw ImageQueueError(.emptyPrompt, "the prompt is empty")
        }
        let length = prompt.count
        if length > configuration.maxPromptLength {
            throw ImageQueueError(.promptTooLong, "the prompt has \(length) characters; the limit is \(configuration.maxPromptLength)")
        }
        if let bad = prompt.unicodeScalars.first(where: Self.isForbiddenControl) {
            throw ImageQueueError(.controlCharacters, "the prompt contains a control character (U+\(Self.hex(bad)))")
        }
        if user.isEmpty || user.utf8.count > 128 {
            throw ImageQueueError(.invalidUser, "a user id of 1 to 128 bytes is required")
        }
        if user.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw ImageQueueError(.controlCharacters, "the user id contains a control character")
        }
        if imageCount < 1 || imageCount > Self.maxImageCount {
            throw ImageQueueError(.invalidRequest, "n (the number of images) must be 1 to \(Self.maxImageCount), not \(imageCount)")
        }
        if let key = idempotencyKey {
            if key.isEmpty || key.utf8.count > 200 || key.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                throw ImageQueueError(.invalidRequest, "the idempotency key must be 1 to 200 bytes without control characters")
            }
        }
        if let webhookURL {
            // Names and literal addresses only: the DNS lookup is the client's, off the
            // cooperative threads (`ImageQueueClient.checkWebhookAddresses`).
            _ = try WebhookTarget(webhookURL, allowHosts: configuration.webhookAllowHosts, resolve: false)
        }
    }

    /// Control characters other than the ordinary white space of a multi-line prompt
    /// (newline, tab) are refused.
    static func isForbiddenControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control && scalar != "\n" && scalar != "\t"
    }

    private static func hex(_ scalar: Unicode.Scalar) -> String {
        let digits = String(scalar.value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

/// The request as stored in the job hash (`request` field) and read by workers.
public struct JobPayload: Codable, Sendable, Equatable {
    /// Protocol version of this object.
    public var v: Int
    /// The user's prompt.
    public var prompt: String
    /// Who asked.
    public var user: String
    /// Whether to enhance the prompt.
    public var enhance: Bool
    /// Free-form data for front ends.
    public var metadata: [String: String]?
    /// The priority, left out for `normal` (enqueueJob reads it to place the job).
    public var priority: JobPriority?
    /// How many images, left out for 1.
    public var n: Int?
    /// The webhook, when one was asked for (enqueueJob copies it onto the job hash).
    public var webhookURL: String?

    /// The protocol version this code writes and reads.
    public static let version = 1

    /// Creates the payload of a request.
    public init(_ request: JobRequest) {
        v = Self.version
        prompt = request.prompt
        user = request.user
        enhance = request.enhance
        metadata = request.metadata.isEmpty ? nil : request.metadata
        priority = request.priority == .normal ? nil : request.priority
        n = request.imageCount == 1 ? nil : request.imageCount
        webhookURL = request.webhookURL
    }

    enum CodingKeys: String, CodingKey {
        case v, prompt, user, enhance, metadata, priority, n, webhookURL = "webhook_url"
    }

    /// How many images the job makes (1 when absent or out of range).
    public var imageCount: Int { n.map { min(max($0, 1), JobRequest.maxImageCount) } ?? 1 }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        v = try container.decodeIfPresent(Int.self, forKey: .v) ?? 1
        prompt = try container.decode(String.self, forKey: .prompt)
        user = try container.decode(String.self, forKey: .user)
        enhance = try container.decodeIfPresent(Bool.self, forKey: .enhance) ?? true
        metadata = try container.decodeIfPresent([String: String].self, forKey: .metadata)
        priority = try? container.decodeIfPresent(JobPriority.self, forKey: .priority)
        n = try? container.decodeIfPresent(Int.self, forKey: .n)
        webhookURL = try? container.decodeIfPresent(String.self, forKey: .webhookURL)
    }
}

/// What `enqueue` returns.
public struct EnqueuedJob: Sendable, Equatable, Codable {
    /// The job's id.
    public var id: String
    /// The model.
    public var model: String
    /// Its status now (`queued`, or the existing job's status for a repeated idempotency key).
    public var status: JobStatus
    /// Its place in the queue, 1 = next; nil when not queued.
    @NullWhenNil public var position: Int?
    /// False when an idempotency key returned an existing job.
    public var created: Bool

    enum CodingKeys: String, CodingKey { case id, model, status, position, created }

}
