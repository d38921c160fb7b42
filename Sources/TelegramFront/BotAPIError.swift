/// A Bot API call that did not succeed: Telegram's refusal, or no answer at all. Its
/// message never holds the bot token.
public struct BotAPIError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure, for deciding what to do next.
    public enum Kind: String, Sendable {
        /// 401: the token is wrong or revoked.
        case unauthorized
        /// 403: the bot may not write there (blocked by the user, removed from the group).
        case forbidden
        /// 400: Telegram refused the request itself (message gone, caption too long...).
        case badRequest = "bad_request"
        /// 404: no such method (a wrong `TELEGRAM_API_URL`).
        case notFound = "not_found"
        /// 409: another process polls with the same token, or a webhook is set.
        case conflict
        /// 429: flood control; `retryAfter` says how long to wait.
        case rateLimited = "rate_limited"
        /// 5xx, or an answer that is not the Bot API's JSON.
        case serverError = "server_error"
        /// No answer: connection refused, timeout, connection dropped.
        case network
        /// The caller's task was cancelled.
        case cancelled
    }

    /// The kind.
    public let kind: Kind
    /// The method called, e.g. `sendPhoto`.
    public let method: String
    /// Telegram's description, or what went wrong on the way (free of secrets).
    public let detail: String
    /// For `.rateLimited`: the wait Telegram asked for.
    public var retryAfter: Duration?

    /// Creates an error.
    public init(_ kind: Kind, method: String, _ detail: String, retryAfter: Duration? = nil) {
        self.kind = kind
        self.method = method
        self.detail = detail
        self.retryAfter = retryAfter
    }

    /// Whether the same call may succeed later: flood control, server errors, no answer.
    public var isTransient: Bool {
        switch kind {
        case .rateLimited, .serverError, .network: true
        case .unauthorized, .forbidden, .badRequest, .notFound, .conflict, .cancelled: false
        }
    }

    /// Telegram's own words say the edit changed nothing (same text as shown).
    var isNotModified: Bool { kind == .badRequest && detail.contains("message is not modified") }

    /// The message no longer exists (the user deleted it).
    var isMessageGone: Bool {
        kind == .badRequest && (detail.contains("message to edit not found") || detail.contains("message to delete not found"))
    }

    public var description: String { "\(method): \(kind.rawValue): \(detail)" }
}
