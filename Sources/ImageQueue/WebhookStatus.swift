/// A job's webhook as `imagequeue status` and `GET /v1/jobs/{id}` show it (the job hash's
/// `webhook*` fields, docs/PROTOCOL.md).
public struct WebhookStatus: Sendable, Equatable, Encodable {
    /// The URL without user information, query or fragment.
    public var url: String
    /// `waiting` (the job has not ended), `pending` (queued or being retried), `delivered`,
    /// `gave_up`.
    public var state: String
    /// Delivery attempts made for the job's final event.
    public var attempts: Int
    /// The HTTP status of the last answer, when there was one.
    @NullWhenNil public var lastStatus: Int?
    /// Why the last attempt failed, when it got no answer (or was refused).
    @NullWhenNil public var lastError: String?
    /// When the last attempt ended, ms (Redis clock).
    @NullWhenNil public var lastAttemptAt: Int64?
    /// When a 2xx answer came, ms.
    @NullWhenNil public var deliveredAt: Int64?

    enum CodingKeys: String, CodingKey {
        case url, state, attempts, lastStatus = "last_status", lastError = "last_error"
        case lastAttemptAt = "last_attempt_at", deliveredAt = "delivered_at"
    }

    /// Creates a status.
    public init(url: String, state: String, attempts: Int, lastStatus: Int? = nil, lastError: String? = nil,
                lastAttemptAt: Int64? = nil, deliveredAt: Int64? = nil) {
        self.url = url
        self.state = state
        self.attempts = attempts
        self.lastStatus = lastStatus
        self.lastError = lastError
        self.lastAttemptAt = lastAttemptAt
        self.deliveredAt = deliveredAt
    }

    /// From a job hash; nil when the job has no webhook.
    init?(hash: [String: String]) {
        guard let raw = hash["webhook"], !raw.isEmpty else { return nil }
        url = WebhookTarget.redacted(raw)
        state = hash["webhook_state"].flatMap { $0.isEmpty ? nil : $0 } ?? "waiting"
        attempts = Int(hash["webhook_attempts"] ?? "") ?? 0
        lastStatus = hash["webhook_last_status"].flatMap { Int($0) }
        lastError = hash["webhook_last_error"].flatMap { $0.isEmpty ? nil : $0 }
        lastAttemptAt = hash["webhook_last_attempt_at"].flatMap { Int64($0) }
        deliveredAt = hash["webhook_delivered_at"].flatMap { Int64($0) }
    }
}
