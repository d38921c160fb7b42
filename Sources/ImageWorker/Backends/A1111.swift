import CurlHTTP
import FoundationEssentials
import ImageQueue

/// The AUTOMATIC1111 / Forge web UI API at a base URL: `POST /sdapi/v1/txt2img` renders
/// (base64 images in JSON); while it runs, `GET /sdapi/v1/progress` gives the progress (0–1)
/// and a `current_image` preview; `POST /sdapi/v1/interrupt` stops it when the job is
/// cancelled. The web UI renders one request at a time, so its progress is this job's when
/// the server serves one worker slot. A job's n images are one request: `batch_size` n (a
/// configured `params.batch_size` caps it, the rest coming as `n_iter` rounds), each image
/// with its own seed (A1111 numbers them from the request's).
struct A1111Backend: ImageGenerator {
    let call: BackendHTTP
    let url: String
    let model: String?
    let params: [String: JSONValue]
    /// How often progress is asked for.
    var pollInterval: Duration = .milliseconds(500)

    private var base: String { url.hasSuffix("/") ? String(url.dropLast()) : url }

    func batchLimit(for model: String) -> Int { JobRequest.maxImageCount }

    func generate(_ request: GenerationRequest) async throws(GenerationError) -> [GeneratedImage] {
        var body = params
        body["prompt"] = .string(request.prompt)
        let count = max(1, request.count)
        let perBatch = max(1, min(count, params["batch_size"]?.intValue.map { Int(clamping: $0) } ?? count))
        body["batch_size"] = .int(Int64(perBatch))
        if count > 1 { body["n_iter"] = .int(Int64((count + perBatch - 1) / perBatch)) }
        if let model {
            var overrides = body["override_settings"]?.objectValue ?? [:]
            overrides["sd_model_checkpoint"] = .string(model)
            body["override_settings"] = .object(overrides)
        }
        let payload = body
        let render: Result<HTTPResponse, GenerationError> = await withTaskGroup(of: Result<HTTPResponse, GenerationError>?.self) { group in
            group.addTask { await pollProgress(request.progress); return nil }
            group.addTask {
                do throws(GenerationError) {
                    return .success(try await call.post(base + "/sdapi/v1/txt2img", json: .object(payload)))
                } catch {
                    return .failure(error)
                }
            }
            var outcome: Result<HTTPResponse, GenerationError>?
            for await result in group {
                if let result {
                    outcome = result
                    group.cancelAll()
                }
            }
            return outcome ?? .failure(GenerationError(.unreachable, "cancelled"))
        }
        if Task.isCancelled {
            await call.notify(HTTPRequest(method: "POST", url: base + "/sdapi/v1/interrupt"))
            throw GenerationError(.unreachable, "cancelled")
        }
        let response = try render.get()
        try BackendResponse.checkStatus(response, detail: BackendResponse.object(response).flatMap(Self.errorText))
        guard let answer = BackendResponse.object(response) else {
            throw GenerationError(.invalidImage, "HTTP \(response.status) with \(ImageFormat.describe(response.body, contentType: response.header("content-type")))")
        }
        guard case .array(let images)? = answer["images"], !images.isEmpty else {
            throw GenerationError(.invalidImage, "HTTP \(response.status) with JSON that holds no images")
        }
        guard images.count >= count else {
            throw GenerationError(.invalidImage, "HTTP \(response.status) with \(images.count) images for a batch of \(count)")
        }
        // The last ones: a web UI set to return its grid puts it first.
        var decoded: [GeneratedImage] = []
        for position in (images.count - count)..<images.count {
            decoded.append(try BackendResponse.decodeImage(base64: images[position].stringValue, what: "images[\(position)]"))
        }
        return decoded
    }

    /// Asks for the progress until cancelled; reports only what is this render's (progress > 0).
    private func pollProgress(_ progress: ProgressReporter) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: pollInterval)
            } catch {
                return
            }
            let poll = HTTPRequest(method: "GET", url: base + "/sdapi/v1/progress?skip_current_image=false")
            guard let response = try? await call.send(poll, timeout: .seconds(5), maxBytes: 4 * 1024 * 1024),
                  response.status == 200, let answer = BackendResponse.object(response),
                  let fraction = answer["progress"]?.doubleValue, fraction > 0 else { continue }
            progress(fraction, preview: BackendResponse.preview(base64: answer["current_image"]?.stringValue))
        }
    }

    /// The web UI's own error words (`{"error", "detail", "errors"}`).
    static func errorText(_ answer: [String: JSONValue]) -> String? {
        for key in ["detail", "error", "errors"] {
            if let text = answer[key]?.stringValue { return String(text.prefix(200)) }
        }
        return nil
    }
}
