import FoundationEssentials
import Hummingbird
import ImageQueue

/// `POST /v1/jobs`'s body.
struct EnqueueBody: Decodable {
    let model: String
    let prompt: String
    let user: String
    let enhance: Bool?
    let idempotencyKey: String?
    let webhookURL: String?
    let priority: String?
    /// How many images (`n`, 1 to 4; 1 when absent).
    let n: Int?

    enum CodingKeys: String, CodingKey {
        case model, prompt, user, enhance, idempotencyKey = "idempotency_key", webhookURL = "webhook_url", priority, n
    }

    /// The optional fields may be left out, but not sent as null or as another type: the
    /// spec declares them boolean and string, and null is neither.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decode(String.self, forKey: .model)
        prompt = try container.decode(String.self, forKey: .prompt)
        user = try container.decode(String.self, forKey: .user)
        enhance = container.contains(.enhance) ? try container.decode(Bool.self, forKey: .enhance) : nil
        idempotencyKey = container.contains(.idempotencyKey) ? try container.decode(String.self, forKey: .idempotencyKey) : nil
        webhookURL = container.contains(.webhookURL) ? try container.decode(String.self, forKey: .webhookURL) : nil
        priority = container.contains(.priority) ? try container.decode(String.self, forKey: .priority) : nil
        n = container.contains(.n) ? try container.decode(Int.self, forKey: .n) : nil
    }

    /// The priority asked for (`normal` when absent).
    /// - Throws: `APIError` 400 `invalid_priority` for another word.
    func jobPriority() throws -> JobPriority {
        guard let priority else { return .normal }
        guard let level = JobPriority(rawValue: priority) else {
            throw APIError(.badRequest, "invalid_priority", "priority must be high, normal or low, not '\(priority.prefix(20))'")
        }
        return level
    }
}

extension APIServer {
    func addJobRoutes(to router: RouterGroup<BasicRequestContext>) {
        router.post("/v1/jobs") { request, _ -> Response in
            let body: EnqueueBody = try await decodeJSON(request)
            let priority = try body.jobPriority()
            let job = try await queueCall {
                try await client.enqueue(JobRequest(model: body.model, prompt: body.prompt, user: body.user,
                                                    enhance: body.enhance ?? true, idempotencyKey: body.idempotencyKey,
                                                    priority: priority, imageCount: body.n ?? 1, webhookURL: body.webhookURL))
            }
            return .json(job, status: .accepted)  // every property present, `position` null when not queued
        }

        router.get("/v1/jobs/:id") { request, context -> Response in
            let id = try context.parameters.require("id")
            return .json(try await queueCall { try await client.inspector.status(id) })
        }

        router.delete("/v1/jobs/:id") { request, context -> Response in
            let id = try context.parameters.require("id")
            let outcome = try await queueCall { try await client.cancel(id) }
            return .json(["id": id, "status": JobStatus.cancelled.rawValue, "was": outcome.rawValue])
        }

        router.get("/v1/jobs/:id/preview") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard let preview = try await queueCall({ try await client.inspector.preview(id) }) else {
                // Like the image: an unknown job is a 404, a job without a preview a 409 naming
                // its status, so a client can tell "wrong id" from "nothing to show yet".
                let info = try await queueCall { try await client.inspector.status(id) }
                throw APIError(.conflict, "no_preview",
                               "job \(id) has no preview: it is \(info.status.rawValue), and a preview exists only while a backend that sends them is generating it")
            }
            return Response(status: .ok, headers: [.contentType: preview.contentType, .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: preview.bytes)))
        }

        router.get("/v1/jobs/:id/image") { request, context -> Response in
            let id = try context.parameters.require("id")
            // `?index=k`: image k (0-based) of a job that made several; absent, the first.
            let index: Int
            if let text = request.uri.queryParameters["index"] {
                guard let value = Int(text), value >= 0 else {
                    throw APIError(.badRequest, "invalid_index", "index must be a whole number >= 0 (0 is the first image), not '\(text.prefix(20))'")
                }
                index = value
            } else {
                index = 0
            }
            // A job that exists but has no image (yet, or ever) is a 409 naming its status, so
            // a client can tell it from an unknown job or an expired image (404).
            let info = try await queueCall { try await client.inspector.status(id) }
            guard info.status == .completed else {
                throw APIError(.conflict, "not_completed", "job \(id) has no image: it is \(info.status.rawValue), not completed")
            }
            let image = try await queueCall { try await client.inspector.result(id, index: index) }
            return Response(status: .ok, headers: [.contentType: image.contentType, .cacheControl: "private, max-age=3600"],
                            body: .init(byteBuffer: ByteBuffer(bytes: image.bytes)))
        }
    }

    /// A JSON request body: 415 for another content type, 413 past the size limit, 400
    /// when it does not decode.
    func decodeJSON<T: Decodable>(_ request: Request) async throws -> T {
        guard let value: T = try await decodeJSON(request, allowEmpty: false) else {
            throw APIError(.badRequest, "invalid_json", "the body is empty")
        }
        return value
    }

    /// Like `decodeJSON`, but an empty body (of any content type) gives nil when allowed.
    func decodeJSON<T: Decodable>(_ request: Request, allowEmpty: Bool) async throws -> T? {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch {
            throw APIError(.contentTooLarge, "payload_too_large", "the body is larger than \(configuration.maxBodyBytes) bytes")
        }
        if allowEmpty, buffer.readableBytes == 0 { return nil }
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        guard contentType.hasPrefix("application/json") else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "send the body as application/json")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch {
            throw APIError(.badRequest, "invalid_json", "the body is not the JSON object this route expects: \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing field '\(key.stringValue)'"
        case DecodingError.valueNotFound(_, let context):
            "'\(context.codingPath.map(\.stringValue).joined(separator: "."))' is null; send a value or leave it out"
        case DecodingError.typeMismatch(_, let context):
            "wrong type for '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        default: "malformed JSON"
        }
    }

    /// Runs a queue call, answering its errors as JSON with the matching status.
    func queueCall<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as ImageQueueError {
            throw APIError.from(error)
        }
    }
}
