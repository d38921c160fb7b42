import CurlHTTP
import FoundationEssentials
import ImageQueue

/// The seed's Flux worker: `GET {url}?prompt=…` (no auth); `params` become more query
/// parameters. One image per call, and its API takes no seed: a job of n images calls it n times.
struct FluxWorkerBackend: ImageGenerator {
    let call: BackendHTTP
    let url: String
    let params: [String: JSONValue]

    func generate(_ request: GenerationRequest) async throws(GenerationError) -> [GeneratedImage] {
        var query = "prompt=" + URLEncoding.queryValue(request.prompt)
        for (name, value) in params.sorted(by: { $0.key < $1.key }) {
            query += "&" + URLEncoding.queryValue(name) + "=" + URLEncoding.queryValue(value.queryText)
        }
        let separator = url.contains("?") ? "&" : "?"
        return [try BackendResponse.image(from: await call.send(HTTPRequest(method: "GET", url: url + separator + query)))]
    }
}

/// The seed's SDXL worker: `POST {url}` with `{"prompt": …}` (and `params`) and a bearer token;
/// one image per call, no seed.
struct SDXLWorkerBackend: ImageGenerator {
    let call: BackendHTTP
    let url: String
    let apiKey: String
    let params: [String: JSONValue]

    func generate(_ request: GenerationRequest) async throws(GenerationError) -> [GeneratedImage] {
        var body = params
        body["prompt"] = .string(request.prompt)
        return [try BackendResponse.image(from: await call.post(url, json: .object(body), bearer: apiKey))]
    }
}

extension JSONValue {
    /// The value as a query parameter's text.
    var queryText: String {
        switch self {
        case .string(let text): text
        case .int(let value): String(value)
        case .double(let value): String(value)
        case .bool(let value): value ? "true" : "false"
        case .null: ""
        case .array, .object: (try? JSONEncoder().encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
    }
}
