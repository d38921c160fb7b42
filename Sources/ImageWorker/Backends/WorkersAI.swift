import CurlHTTP
import FoundationEssentials
import ImageQueue

/// Cloudflare Workers AI REST: `POST {url}` (…/accounts/<id>/ai/run/<model>) with a bearer
/// token and `{"prompt", …params}`. Flux models answer JSON `{"result":{"image":"<base64>"},
/// "success":true}`; Stable Diffusion models answer the PNG itself. A failure is
/// `{"success":false,"errors":[{"code","message"}]}`. One image per call: a job of n images
/// calls it n times, each with its own `seed`.
struct WorkersAIBackend: ImageGenerator {
    let call: BackendHTTP
    let url: String
    let apiKey: String
    let params: [String: JSONValue]

    func generate(_ request: GenerationRequest) async throws(GenerationError) -> [GeneratedImage] {
        var body = params
        body["prompt"] = .string(request.prompt)
        if let seed = request.seed(configured: params["seed"]) { body["seed"] = .int(seed) }
        let response = try await call.post(url, json: .object(body), bearer: apiKey)
        let contentType = response.header("content-type") ?? ""
        guard contentType.contains("json") || response.body.first == UInt8(ascii: "{") else {
            return [try BackendResponse.image(from: response)]
        }
        let answer = BackendResponse.object(response)
        if let failure = Self.failure(answer, status: response.status) { throw failure }
        try BackendResponse.checkStatus(response)
        guard let result = answer?["result"]?.objectValue else {
            throw GenerationError(.invalidImage, "HTTP \(response.status) with JSON that holds no result")
        }
        return [try BackendResponse.decodeImage(base64: result["image"]?.stringValue, what: "result.image")]
    }

    /// The error a `success: false` answer (or an error status) means, by Workers AI's codes.
    static func failure(_ answer: [String: JSONValue]?, status: Int) -> GenerationError? {
        let first = answer?["errors"].flatMap { value -> [String: JSONValue]? in
            if case .array(let items) = value { return items.first?.objectValue }
            return nil
        }
        guard answer?["success"] == .bool(false) || first != nil || status >= 400 else { return nil }
        let code = first?["code"]?.intValue
        let message = String((first?["message"]?.stringValue ?? "no message").prefix(200))
        let detail = "HTTP \(status), Workers AI error \(code.map(String.init) ?? "?"): \(message)"
        switch code {
        case 3036: return GenerationError(.rejected, "the account's daily allocation is used up (\(detail))")
        case 3040: return GenerationError(.busy, detail)  // out of capacity: try again
        case 3007, 3008: return GenerationError(.timeout, detail)
        case 10000, 9109: return GenerationError(.rejected, "not authorised (\(detail))")
        default: break
        }
        switch status {
        case 408: return GenerationError(.timeout, detail)
        case 429: return GenerationError(.busy, detail)
        case 500..<600: return GenerationError(.serverError, detail)
        case 400..<500: return GenerationError(.rejected, detail)
        default: return GenerationError(.serverError, detail)
        }
    }
}
