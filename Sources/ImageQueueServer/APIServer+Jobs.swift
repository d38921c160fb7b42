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

    enum CodingKeys: String, CodingKey {
        case model, prompt, user, enhance, idempotencyKey = "idempotency_key"
    }
}

extension APIServer {
    func addJobRoutes(to router: Router<BasicRequestContext>) {
        router.post("/v1/jobs") { request, _ -> Response in
            try authorize(request, mutating: true)
            let body: EnqueueBody = try await decodeJSON(request)
            let job = try await queueCall {
                try await client.enqueue(JobRequest(model: body.model, prompt: body.prompt, user: body.user,
                                                    enhance: body.enhance ?? true, idempotencyKey: body.idempotencyKey))
            }
            return .json(job, status: .accepted)
        }

        router.get("/v1/jobs/:id") { request, context -> Response in
            try authorize(request, mutating: false)
            let id = try context.parameters.require("id")
            return .json(try await queueCall { try await client.inspector.status(id) })
        }

        router.delete("/v1/jobs/:id") { request, context -> Response in
            try authorize(request, mutating: true)
            let id = try context.parameters.require("id")
            try await queueCall { try await client.cancel(id) }
            return .json(["id": id, "status": JobStatus.cancelled.rawValue])
        }

        router.get("/v1/jobs/:id/image") { request, context -> Response in
            try authorize(request, mutating: false)
            let id = try context.parameters.require("id")
            let image = try await queueCall { try await client.inspector.result(id) }
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
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
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
