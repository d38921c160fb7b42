import CurlHTTP
import FoundationEssentials

/// An image and its type.
public struct GeneratedImage: Sendable {
    /// The encoded image.
    public var bytes: [UInt8]
    /// `image/png` or `image/jpeg`.
    public var contentType: String
    /// True when the offline placeholder made it.
    public var placeholder: Bool

    /// The file extension for the content type.
    public var fileExtension: String { contentType == "image/jpeg" ? "jpg" : "png" }
}

/// Turns a prompt into an image for one model.
public protocol ImageGenerator: Sendable {
    /// Generates one image.
    /// - Throws: `GenerationError` (transient or permanent).
    func generate(prompt: String, model: String) async throws(GenerationError) -> GeneratedImage
}

/// The seed's Cloudflare workers: Flux by `GET {url}?prompt=…` (no auth), SDXL by
/// `POST {url}` with `{"prompt": …}` and a bearer token.
public struct HTTPImageGenerator: ImageGenerator {
    let http: HTTPClient
    let fluxURL: String?
    let sdxlURL: String?
    let sdxlAPIKey: String?
    let timeout: Duration
    let connectTimeout: Duration
    let maxBytes: Int

    /// Creates the generator.
    public init(http: HTTPClient, fluxURL: String?, sdxlURL: String?, sdxlAPIKey: String?, timeout: Duration,
                connectTimeout: Duration, maxBytes: Int) {
        self.http = http
        self.fluxURL = fluxURL
        self.sdxlURL = sdxlURL
        self.sdxlAPIKey = sdxlAPIKey
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.maxBytes = maxBytes
    }

    public func generate(prompt: String, model: String) async throws(GenerationError) -> GeneratedImage {
        var request: HTTPRequest
        switch model {
        case "flux":
            guard let fluxURL else { throw GenerationError(.rejected, "no Flux endpoint is configured") }
            let separator = fluxURL.contains("?") ? "&" : "?"
            request = HTTPRequest(method: "GET", url: fluxURL + separator + "prompt=" + URLEncoding.queryValue(prompt))
        case "sdxl":
            guard let sdxlURL, let sdxlAPIKey else { throw GenerationError(.rejected, "no SDXL endpoint is configured") }
            let body = try? JSONEncoder().encode(["prompt": prompt])
            request = HTTPRequest(method: "POST", url: sdxlURL,
                                  headers: [("Content-Type", "application/json"), ("Authorization", "Bearer \(sdxlAPIKey)")],
                                  body: body.map { Array($0) })
        default:
            throw GenerationError(.rejected, "no backend for model \(model)")
        }
        request.timeout = timeout
        request.connectTimeout = connectTimeout
        request.maxResponseBytes = maxBytes

        let response: HTTPResponse
        do {
            response = try await http.send(request)
        } catch {
            switch error.kind {
            case .timeout: throw GenerationError(.timeout, "no complete answer within \(timeout.seconds) s")
            case .bodyTooLarge: throw GenerationError(.imageTooLarge, "the answer exceeded \(maxBytes) bytes")
            case .connectionFailed: throw GenerationError(.unreachable, error.message)
            case .cancelled: throw GenerationError(.unreachable, "cancelled")
            case .tls: throw GenerationError(.unreachable, "TLS: \(error.message)")
            case .invalidURL: throw GenerationError(.rejected, "the endpoint URL is not usable")
            case .protocolError: throw GenerationError(.serverError, error.message)
            }
        }
        return try Self.image(from: response)
    }

    /// Classifies an answer: an image, or the error its status and body describe.
    static func image(from response: HTTPResponse) throws(GenerationError) -> GeneratedImage {
        switch response.status {
        case 200..<300:
            if let type = ImageFormat.contentType(of: response.body) {
                return GeneratedImage(bytes: response.body, contentType: type, placeholder: false)
            }
            throw GenerationError(.invalidImage, "HTTP \(response.status) with \(ImageFormat.describe(response.body, contentType: response.header("content-type")))")
        case 408:
            throw GenerationError(.timeout, "HTTP 408")
        case 429:
            throw GenerationError(.busy, "HTTP 429", retryAfter: response.header("retry-after").flatMap(Self.retryAfter))
        case 500..<600:
            throw GenerationError(.serverError, "HTTP \(response.status)")
        default:
            throw GenerationError(.rejected, "HTTP \(response.status)")
        }
    }

    /// A `Retry-After` in seconds (the HTTP-date form is treated as absent).
    static func retryAfter(_ value: String) -> Duration? {
        guard let seconds = Double(value.trimmingWhitespace()), seconds >= 0, seconds < 86_400 else { return nil }
        return .milliseconds(Int64(seconds * 1000))
    }
}

/// Recognises images by their first bytes.
public enum ImageFormat {
    /// `image/png` or `image/jpeg` by magic bytes, nil for anything else.
    public static func contentType(of bytes: [UInt8]) -> String? {
        if bytes.count >= 8, bytes.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if bytes.count >= 3, bytes.prefix(3).elementsEqual([0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        return nil
    }

    /// What a non-image body looks like, for the error detail.
    static func describe(_ bytes: [UInt8], contentType: String?) -> String {
        let head = String(decoding: bytes.prefix(256), as: UTF8.self).trimmingWhitespace().lowercased()
        if head.hasPrefix("<!doctype html") || head.hasPrefix("<html") || contentType?.contains("html") == true {
            return "an HTML page instead of an image"
        }
        if head.hasPrefix("{") || head.hasPrefix("[") || contentType?.contains("json") == true {
            return "a JSON document instead of an image"
        }
        if bytes.isEmpty { return "an empty body" }
        return "\(bytes.count) bytes that are neither PNG nor JPEG"
    }
}

/// The built-in offline backend: renders a real PNG whose colours and shapes derive from
/// the prompt. Labelled as placeholder in its result.
public struct PlaceholderGenerator: ImageGenerator {
    let delay: Duration
    let size: Int

    /// Creates the generator; `delay` makes progress visible in a demo.
    public init(delay: Duration = .zero, size: Int = 512) {
        self.delay = delay
        self.size = size
    }

    public func generate(prompt: String, model: String) async throws(GenerationError) -> GeneratedImage {
        if delay > .zero { try? await Task.sleep(for: delay) }
        let bytes = PlaceholderImage.render(prompt: prompt, model: model, size: size)
        return GeneratedImage(bytes: bytes, contentType: "image/png", placeholder: true)
    }
}
