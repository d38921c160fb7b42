import CurlHTTP
import FoundationEssentials
import ImageQueue

/// An OpenAI-compatible images API: `POST …/v1/images/generations` with
/// `{"model", "prompt", "n", "response_format": "b64_json", …params}`; the answer's
/// `data[i].b64_json` are the images. A job's n images are one request with that `n`, except
/// for `dall-e-3`, which makes one image per request (so it is called once per image).
/// Errors are `{"error":{"message","type","code"}}`.
struct OpenAIImagesBackend: ImageGenerator {
    let call: BackendHTTP
    let url: String
    let apiKey: String?
    let model: String?
    let params: [String: JSONValue]

    /// The endpoint for a configured URL: the full path, a `/v1` base, or the host alone.
    static func endpoint(_ url: String) -> String {
        let trimmed = url.hasSuffix("/") ? String(url.dropLast()) : url
        if trimmed.hasSuffix("/images/generations") { return trimmed }
        if trimmed.hasSuffix("/v1") { return trimmed + "/images/generations" }
        return trimmed + "/v1/images/generations"
    }

    func batchLimit(for model: String) -> Int {
        (self.model ?? "").lowercased().hasPrefix("dall-e-3") ? 1 : JobRequest.maxImageCount
    }

    func generate(_ request: GenerationRequest) async throws(GenerationError) -> [GeneratedImage] {
        let count = max(1, request.count)
        var body = params
        body["prompt"] = .string(request.prompt)
        body["n"] = .int(Int64(count))
        body["response_format"] = .string("b64_json")
        if let model { body["model"] = .string(model) }
        let response = try await call.post(Self.endpoint(url), json: .object(body), bearer: apiKey)
        let answer = BackendResponse.object(response)
        if response.status >= 400 {
            let error = answer?["error"]?.objectValue
            let code = error?["code"]?.stringValue ?? error?["type"]?.stringValue
            let message = String((error?["message"]?.stringValue ?? "no message").prefix(200))
            let detail = "\(code ?? "error"): \(message)"
            // A spent quota is a 429 that no retry within minutes cures.
            if code == "insufficient_quota" || code == "billing_hard_limit_reached" {
                throw GenerationError(.rejected, "the account's quota is used up (HTTP \(response.status), \(detail))")
            }
            try BackendResponse.checkStatus(response, detail: detail)
        }
        try BackendResponse.checkStatus(response)
        guard case .array(let items)? = answer?["data"], items.first?.objectValue != nil else {
            throw GenerationError(.invalidImage, "HTTP \(response.status) with \(answer == nil ? ImageFormat.describe(response.body, contentType: response.header("content-type")) : "JSON that holds no data[0]")")
        }
        guard items.count >= count else {
            throw GenerationError(.invalidImage, "HTTP \(response.status) with \(items.count) images for n = \(count)")
        }
        var images: [GeneratedImage] = []
        for (position, item) in items.prefix(count).enumerated() {
            images.append(try BackendResponse.decodeImage(base64: item.objectValue?["b64_json"]?.stringValue, what: "data[\(position)].b64_json"))
        }
        return images
    }
}
