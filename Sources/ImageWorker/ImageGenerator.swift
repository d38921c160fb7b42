import CurlHTTP
import FoundationEssentials
import ImageQueue

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

/// What a backend reports while it renders: how far it is (0 to 1) and, when it sends one,
/// a preview image (PNG or JPEG bytes).
public struct ProgressReporter: Sendable {
    private let report: @Sendable (Double?, [UInt8]?) -> Void

    /// A reporter that hands each report to `report`.
    public init(_ report: @escaping @Sendable (Double?, [UInt8]?) -> Void) { self.report = report }

    /// One that drops every report.
    public static let ignored = ProgressReporter { _, _ in }

    /// Reports progress (clamped to 0...1) and an optional preview. Cheap and non-blocking:
    /// the job's processor publishes the latest at most every 500 ms.
    public func callAsFunction(_ fraction: Double?, preview: [UInt8]? = nil) {
        report(fraction.map { min(1, max(0, $0.isFinite ? $0 : 0)) }, preview)
    }
}

/// The images one backend call makes: one, or, for a backend that renders a batch in one
/// request, several (`count`) of the job's images.
public struct GenerationRequest: Sendable {
    /// The job: backends that can find an earlier render of theirs (ComfyUI) derive its id
    /// from this, so a retried attempt finds its own render.
    public var jobID: String
    /// The queue's model name.
    public var model: String
    /// The (enhanced) prompt.
    public var prompt: String
    /// Where progress and previews go: the fraction of this call's work.
    public var progress: ProgressReporter
    /// How many images this call makes: 1, or up to the generator's `batchLimit(for:)`.
    public var count: Int
    /// The job's index (0-based) of this call's first image.
    public var index: Int
    /// How many images the whole job makes (`n`, 1 to `JobRequest.maxImageCount`).
    public var total: Int

    public init(jobID: String, model: String, prompt: String, count: Int = 1, index: Int = 0, total: Int = 1,
                progress: ProgressReporter = .ignored) {
        self.jobID = jobID
        self.model = model
        self.prompt = prompt
        self.count = count
        self.index = index
        self.total = max(total, index + count)
        self.progress = progress
    }

    /// The seed to send for this call's image, for a backend that takes one and makes the job's
    /// images one call each: nil for a one-image job (the backend picks its seed, as it always
    /// did); else `base + index`, `base` being the model's configured seed (`params.seed`) or one
    /// derived from the job id, so every image of the job has its own seed and they differ.
    public func seed(configured: JSONValue?) -> Int64? {
        guard total > 1 else { return nil }
        if let base = configured?.intValue, base >= 0 { return base + Int64(index) }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in jobID.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        // Below 2^31 less the job's images: a seed every backend accepts.
        return Int64(hash % ((1 << 31) - 8)) + Int64(index)
    }
}

/// Turns a prompt into images for one model. Cancelling the calling task stops the work:
/// the transfer is aborted, and a backend that can stop a render (A1111, ComfyUI) is told to.
public protocol ImageGenerator: Sendable {
    /// The most images one call makes for `model`: above 1 for a backend that renders a batch
    /// in one request (A1111's `batch_size`, OpenAI's `n`); 1 (the default) for one that makes
    /// one image per call, which the worker calls once per image.
    func batchLimit(for model: String) -> Int

    /// Generates `request.count` images (one, unless `batchLimit(for:)` allows more), in order.
    /// - Throws: `GenerationError` (transient or permanent).
    func generate(_ request: GenerationRequest) async throws(GenerationError) -> [GeneratedImage]
}

extension ImageGenerator {
    public func batchLimit(for model: String) -> Int { 1 }
}

/// Sends a backend's HTTP requests with the model's limits and maps transport failures to
/// `GenerationError`s; shared by every HTTP backend.
struct BackendHTTP: Sendable {
    let http: HTTPClient
    let timeout: Duration
    let connectTimeout: Duration
    let maxBytes: Int

    /// Sends `request` with the generation timeout and the body limit.
    func send(_ request: HTTPRequest, timeout: Duration? = nil, maxBytes: Int? = nil) async throws(GenerationError) -> HTTPResponse {
        var request = request
        request.timeout = timeout ?? self.timeout
        request.connectTimeout = connectTimeout
        request.maxResponseBytes = maxBytes ?? self.maxBytes
        do {
            return try await http.send(request)
        } catch {
            throw Self.map(error, timeout: request.timeout, maxBytes: request.maxResponseBytes)
        }
    }

    /// A JSON POST.
    func post(_ url: String, json: JSONValue, bearer: String? = nil, timeout: Duration? = nil) async throws(GenerationError) -> HTTPResponse {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if let bearer { headers.append(("Authorization", "Bearer \(bearer)")) }
        let body = (try? JSONEncoder().encode(json)).map { Array($0) } ?? []
        return try await send(HTTPRequest(method: "POST", url: url, headers: headers, body: body), timeout: timeout)
    }

    /// Tells a backend to stop, once the job's task was cancelled: a short call that the
    /// cancellation does not cut off; its failure is ignored (the transfer is aborted anyway).
    func notify(_ request: HTTPRequest) async {
        var request = request
        request.timeout = .seconds(3)
        request.connectTimeout = min(connectTimeout, .seconds(3))
        request.maxResponseBytes = 64 * 1024
        let http = self.http
        _ = await withoutCancellation { try? await http.send(request) }
    }

    static func map(_ error: HTTPError, timeout: Duration, maxBytes: Int) -> GenerationError {
        switch error.kind {
        case .timeout: GenerationError(.timeout, "no complete answer within \(timeout.seconds) s")
        case .bodyTooLarge: GenerationError(.imageTooLarge, "the answer exceeded \(maxBytes) bytes")
        case .connectionFailed: GenerationError(.unreachable, error.message)
        case .cancelled: GenerationError(.unreachable, "cancelled")
        case .tls: GenerationError(.unreachable, "TLS: \(error.message)")
        case .invalidURL: GenerationError(.rejected, "the endpoint URL is not usable")
        case .protocolError: GenerationError(.serverError, error.message)
        }
    }
}

/// How backends' answers are read: an image by its magic bytes, or the error its status says.
enum BackendResponse {
    /// An image body, or the error its status and body describe.
    static func image(from response: HTTPResponse) throws(GenerationError) -> GeneratedImage {
        try checkStatus(response)
        if let type = ImageFormat.contentType(of: response.body) {
            return GeneratedImage(bytes: response.body, contentType: type, placeholder: false)
        }
        throw GenerationError(.invalidImage, "HTTP \(response.status) with \(ImageFormat.describe(response.body, contentType: response.header("content-type")))")
    }

    /// Throws the error a non-2xx status means (`detail` adds the service's own words).
    static func checkStatus(_ response: HTTPResponse, detail: String? = nil) throws(GenerationError) {
        let suffix = detail.map { ": \($0)" } ?? ""
        switch response.status {
        case 200..<300: return
        case 408: throw GenerationError(.timeout, "HTTP 408\(suffix)")
        case 429: throw GenerationError(.busy, "HTTP 429\(suffix)", retryAfter: response.header("retry-after").flatMap(retryAfter))
        case 500..<600: throw GenerationError(.serverError, "HTTP \(response.status)\(suffix)")
        default: throw GenerationError(.rejected, "HTTP \(response.status)\(suffix)")
        }
    }

    /// A JSON object body.
    static func object(_ response: HTTPResponse) -> [String: JSONValue]? {
        (try? JSONDecoder().decode(JSONValue.self, from: Data(response.body)))?.objectValue
    }

    /// A base64 image (a `data:` URL prefix is allowed), checked by its magic bytes.
    static func decodeImage(base64 text: String?, what: String) throws(GenerationError) -> GeneratedImage {
        guard let text else { throw GenerationError(.invalidImage, "the answer holds no \(what)") }
        let payload = text.hasPrefix("data:") ? String(text[(text.firstIndex(of: ",").map { text.index(after: $0) } ?? text.endIndex)...]) : text
        guard let data = Data(base64Encoded: payload, options: .ignoreUnknownCharacters) else {
            throw GenerationError(.invalidImage, "\(what) is not base64")
        }
        let bytes = Array(data)
        guard let type = ImageFormat.contentType(of: bytes) else {
            throw GenerationError(.invalidImage, "\(what) holds \(ImageFormat.describe(bytes, contentType: nil))")
        }
        return GeneratedImage(bytes: bytes, contentType: type, placeholder: false)
    }

    /// A preview worth storing: PNG or JPEG, small enough.
    static func preview(base64 text: String?) -> [UInt8]? {
        guard let text, !text.isEmpty, let image = try? decodeImage(base64: text, what: "preview"),
              image.bytes.count <= WorkerQueue.maxPreviewBytes else { return nil }
        return image.bytes
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

    public func generate(_ request: GenerationRequest) async throws(GenerationError) -> [GeneratedImage] {
        if delay > .zero {
            // Progress in tenths, so a demo shows it rising.
            for step in 1...10 {
                try? await Task.sleep(for: delay / 10)
                if Task.isCancelled { throw GenerationError(.unreachable, "cancelled") }
                request.progress(Double(step) / 10)
            }
        }
        // The job's first image is the prompt's picture; each further one a variation of it.
        let bytes = PlaceholderImage.render(prompt: request.prompt, model: request.model, size: size, variation: request.index)
        return [GeneratedImage(bytes: bytes, contentType: "image/png", placeholder: true)]
    }
}
