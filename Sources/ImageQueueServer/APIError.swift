import FoundationEssentials
import Hummingbird
import ImageQueue

/// An error answered as `{"error": {"code", "message"}}` with its HTTP status.
struct APIError: Error, HTTPResponseError {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        let body = #"{"error":{"code":"# + JSONText.string(code) + #","message":"# + JSONText.string(message) + "}}"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static let unauthorized = APIError(.unauthorized, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required",
                                       headers: [.wwwAuthenticate: "Bearer"])

    /// The answer for a queue error.
    static func from(_ error: ImageQueueError) -> APIError {
        switch error.code {
        case .unknownModel, .emptyPrompt, .promptTooLong, .controlCharacters, .invalidUser, .invalidRequest, .invalidJobID,
             .invalidWebhook:
            return APIError(.badRequest, error.code.rawValue, error.message)
        case .rateLimited:
            let seconds = max(1, ((error.retryAfter ?? .seconds(1)).components.seconds) + 1)
            return APIError(.tooManyRequests, "rate_limited", error.message, headers: [.retryAfter: String(seconds)])
        case .notFound: return APIError(.notFound, "not_found", error.message)
        case .notQueued: return APIError(.conflict, "not_queued", error.message)
        case .staleToken: return APIError(.conflict, "stale_token", error.message)
        case .cancelled: return APIError(.conflict, "cancelled", error.message)
        case .redis: return APIError(.serviceUnavailable, "redis_unavailable", "Redis is not available right now")
        case .redisFull, .queueFull:
            let seconds = max(1, (error.retryAfter ?? ImageQueueError.fullRetryAfter).components.seconds)
            return APIError(.serviceUnavailable, error.code.rawValue, error.message, headers: [.retryAfter: String(seconds)])
        case .malformed: return APIError(.internalServerError, "malformed", error.message)
        case .notReplicated: return APIError(.serviceUnavailable, "not_replicated", error.message)
        }
    }
}

/// JSON encoding helpers for hand-written bodies.
enum JSONText {
    /// A JSON string literal.
    static func string(_ text: String) -> String {
        let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// Any encodable value, keys sorted.
    static func encode<T: Encodable>(_ value: T) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return ByteBuffer(bytes: (try? encoder.encode(value)) ?? Data("null".utf8))
    }
}

extension Response {
    /// A JSON response.
    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: JSONText.encode(value)))
    }
}
