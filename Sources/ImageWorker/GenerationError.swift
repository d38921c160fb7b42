import ImageQueue

/// Why generation failed, whether trying again can help, and what to tell the user.
public struct GenerationError: Error, CustomStringConvertible, Sendable {
    /// The error classes, each with a stable code and a user-facing message.
    public enum Kind: String, Sendable {
        case unreachable = "backend_unreachable"
        case timeout = "backend_timeout"
        case busy = "backend_busy"
        case serverError = "backend_error"
        case rejected = "backend_rejected"
        case invalidImage = "invalid_image"
        case imageTooLarge = "image_too_large"
        case storageFailed = "storage_failed"
    }

    /// The class.
    public let kind: Kind
    /// Detail for logs and the event (no secrets: no headers, no keys).
    public let detail: String
    /// For `.busy`: the delay the service asked for.
    public var retryAfter: Duration?

    /// Creates an error.
    public init(_ kind: Kind, _ detail: String, retryAfter: Duration? = nil) {
        self.kind = kind
        self.detail = detail
        self.retryAfter = retryAfter
    }

    /// Whether another attempt may succeed: connection errors, timeouts, 408, 429 and 5xx.
    public var isTransient: Bool {
        switch kind {
        case .unreachable, .timeout, .busy, .serverError: true
        case .rejected, .invalidImage, .imageTooLarge, .storageFailed: false
        }
    }

    /// The message shown to the person who asked for the image.
    public var userMessage: String {
        switch kind {
        case .unreachable: "The image service could not be reached. Please try again later."
        case .timeout: "The image service took too long to answer."
        case .busy: "The image service is busy right now. Please try again in a moment."
        case .serverError: "The image service had an internal error."
        case .rejected: "The image service refused this request (\(detail))."
        case .invalidImage: "The image service did not return an image."
        case .imageTooLarge: "The generated image is larger than the allowed size."
        case .storageFailed: "The image was generated but could not be stored."
        }
    }

    /// The record stored on the job and sent in events.
    public var jobError: JobError { JobError(code: kind.rawValue, message: userMessage) }

    public var description: String { "\(kind.rawValue): \(detail)" }
}
