import Hummingbird
import HummingbirdTesting
@testable import ImageQueueServer
import ImageQueue
import Logging
import RedisClient
import Testing
import TestSupport

/// `GET /v1/jobs/{id}/preview` in process on a real Redis: the bytes a worker stored under
/// `QueueKeys.preview` (written here with a plain `SET … PX`, as the worker's reportProgress
/// does), typed by their magic bytes, never cached; a JSON 404 for an unknown job, a 409 for a job that has none.
@Suite(.runsClients) struct PreviewRouteTests {
    static let token = "preview-route-token-0123456789"
    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 1, 2, 3]
    static let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 0x4A, 0x46, 0x49, 0x46, 0, 9, 8, 7]

    struct Setup {
        let router: Router<BasicRequestContext>
        let redis: RedisConnection
        let keys: QueueKeys
    }

    func setup(protectReads: Bool = false) throws -> Setup {
        var configuration = APIServer.Configuration(token: Self.token)
        configuration.protectReads = protectReads
        var queue = QueueConfiguration()
        queue.keyPrefix = TestEnvironment.uniquePrefix("preview")
        let redisConfiguration = try RedisConfiguration(url: TestEnvironment.redisURL())
        let server = try APIServer(configuration: configuration, redis: redisConfiguration, queue: queue,
                                   logger: Logger(label: "preview-route-tests"))
        for client in server.clients { _ = runInTest(client) }
        let redis = runInTest(RedisConnection(configuration: redisConfiguration))
        return Setup(router: server.makeRouter(), redis: redis, keys: queue.keys)
    }

    /// Stores `bytes` as the preview of `id`, as the worker does.
    func store(_ bytes: [UInt8], for id: String, in setup: Setup) async throws {
        _ = try await setup.redis.send("SET", setup.keys.preview(try JobID(id)), bytes, "PX", "60000")
    }

    @Test func aStoredPreviewIsServedWithItsTypeAndNotCached() async throws {
        let setup = try setup()
        defer { setup.redis.close() }
        try await store(Self.png, for: "flux-01previewpng", in: setup)
        try await store(Self.jpeg, for: "sdxl-01previewjpeg", in: setup)
        try await Application(router: setup.router).test(.router) { client in
            for (id, bytes, type) in [("flux-01previewpng", Self.png, "image/png"), ("sdxl-01previewjpeg", Self.jpeg, "image/jpeg")] {
                try await client.execute(uri: "/v1/jobs/\(id)/preview", method: .get) { response in
                    #expect(response.status == .ok, "\(id): \(String(buffer: response.body))")
                    #expect(response.headers[.contentType] == type, "\(id)")
                    #expect(response.headers[.cacheControl] == "no-store", "\(id)")
                    #expect(Array(response.body.readableBytesView) == bytes, "\(id)")
                }
            }
        }
    }

    @Test func anUnknownJobIsA404AQueuedJobWithoutPreviewA409AndAMalformedIdA400() async throws {
        let setup = try setup()
        defer { setup.redis.close() }
        // Bytes that are neither PNG nor JPEG are no preview either; with no job behind them
        // the answer is the unknown job's 404.
        try await store(Array("GIF89a, not a preview".utf8), for: "flux-01previewgif", in: setup)
        try await Application(router: setup.router).test(.router) { client in
            for id in ["flux-01nopreview", "flux-01previewgif"] {
                try await client.execute(uri: "/v1/jobs/\(id)/preview", method: .get) { response in
                    #expect(response.status == .notFound, "\(id)")
                    #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, "\(id)")
                    let body = String(buffer: response.body)
                    #expect(body.contains(#""code":"not_found""#), "\(id): \(body)")
                }
            }
            // A job that exists (just enqueued through the API) but has no preview: 409 naming its status.
            var created = ""
            try await client.execute(uri: "/v1/jobs", method: .post,
                                     headers: [.authorization: "Bearer \(Self.token)", .contentType: "application/json"],
                                     body: ByteBuffer(string: #"{"model":"flux","prompt":"a quiet lake","user":"alice"}"#)) { response in
                #expect(response.status == .accepted, "\(String(buffer: response.body))")
                let body = String(buffer: response.body)
                created = (try? ParsedJSON.parse(body))?["id"]?.string ?? ""
            }
            #expect(created.hasPrefix("flux-"), "\(created)")
            try await client.execute(uri: "/v1/jobs/\(created)/preview", method: .get) { response in
                #expect(response.status == .conflict, "\(created)")
                let body = String(buffer: response.body)
                #expect(body.contains(#""code":"no_preview""#), "\(body)")
                #expect(body.contains("it is queued"), "\(body)")
            }
            for id in ["nomodel", "flux-", "flux-bad%20id"] {
                try await client.execute(uri: "/v1/jobs/\(id)/preview", method: .get) { response in
                    #expect(response.status == .badRequest, "\(id): \(String(buffer: response.body))")
                    #expect(String(buffer: response.body).contains(#""error""#), "\(id)")
                }
            }
        }
    }

    @Test func withProtectedReadsThePreviewNeedsTheTokenLikeTheImage() async throws {
        let setup = try setup(protectReads: true)
        defer { setup.redis.close() }
        try await store(Self.png, for: "flux-01previewauth", in: setup)
        try await Application(router: setup.router).test(.router) { client in
            for uri in ["/v1/jobs/flux-01previewauth/preview", "/v1/jobs/flux-01previewauth/image"] {
                try await client.execute(uri: uri, method: .get) { #expect($0.status == .unauthorized, "\(uri)") }
            }
            try await client.execute(uri: "/v1/jobs/flux-01previewauth/preview", method: .get,
                                     headers: [.authorization: "Bearer \(Self.token)"]) { response in
                #expect(response.status == .ok)
                #expect(Array(response.body.readableBytesView) == Self.png)
            }
        }
        // Without --protect-reads it is open, like the image.
        let open = try self.setup()
        defer { open.redis.close() }
        try await store(Self.png, for: "flux-01previewopen", in: open)
        try await Application(router: open.router).test(.router) { client in
            try await client.execute(uri: "/v1/jobs/flux-01previewopen/preview", method: .get) { #expect($0.status == .ok) }
        }
    }
}
