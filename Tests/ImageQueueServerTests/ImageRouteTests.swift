import Foundation
import Hummingbird
import HummingbirdTesting
@testable import ImageQueueServer
import ImageQueue
import Logging
import RedisClient
import Testing
import TestSupport

/// `POST /v1/jobs` with `n` and `GET /v1/jobs/{id}/image?index=k` in process on a real Redis:
/// a job of three images is enqueued through the API, claimed and completed as a worker with
/// the redis result store does (three blobs under indexed keys, the result listing them), and
/// each image is served by its index; a bad index is a 400, one past the last a 404.
@Suite(.runsClients) struct ImageRouteTests {
    static let token = "image-route-token-0123456789"

    /// Three small, different PNG-looking bodies.
    static func image(_ index: Int) -> [UInt8] {
        [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array("image number \(index)".utf8)
    }

    struct Setup {
        let router: Router<BasicRequestContext>
        let redis: RedisConnection
        let worker: WorkerSide
    }

    /// What a worker needs (Sendable, for the test client's closures).
    struct WorkerSide: Sendable {
        let redisConfiguration: RedisConfiguration
        let redis: RedisConnection
        let queue: QueueConfiguration
    }

    func setup() throws -> Setup {
        let configuration = APIServer.Configuration(token: Self.token)
        var queue = QueueConfiguration()
        queue.keyPrefix = TestEnvironment.uniquePrefix("image")
        queue.rateLimit = nil
        let redisConfiguration = try RedisConfiguration(url: TestEnvironment.redisURL())
        let server = try APIServer(configuration: configuration, redis: redisConfiguration, queue: queue,
                                   logger: Logger(label: "image-route-tests"))
        for client in server.clients { _ = runInTest(client) }
        let redis = runInTest(RedisConnection(configuration: redisConfiguration))
        return Setup(router: server.makeRouter(), redis: redis,
                     worker: WorkerSide(redisConfiguration: redisConfiguration, redis: redis, queue: queue))
    }

    /// `POST /v1/jobs` with `body`; the status and the parsed answer.
    func enqueue(_ client: some TestClientProtocol, _ body: String) async throws -> (HTTPResponse.Status, [String: Any]) {
        try await client.execute(uri: "/v1/jobs", method: .post,
                                 headers: [.authorization: "Bearer \(Self.token)", .contentType: "application/json"],
                                 body: ByteBuffer(string: body)) { response in
            let parsed = (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] ?? [:]
            return (response.status, parsed)
        }
    }

    /// Claims the job and completes it with `count` images in the redis store, as a worker does.
    func complete(_ id: String, count: Int, in setup: WorkerSide) async throws {
        let worker = runInTest(WorkerQueue(redis: setup.redisConfiguration, configuration: setup.queue, workerID: "image-route-worker"))
        defer { worker.close() }
        guard case .claimed(let job) = try await worker.claim(model: "flux", lease: .seconds(30)) else {
            throw TestSetupError("nothing to claim")
        }
        #expect(job.id == id && job.payload.imageCount == count)
        let blobs = ResultBlobs(redis: setup.redis, keys: setup.queue.keys)
        var results: [JobResult] = []
        for index in 0..<count {
            let key = try await blobs.write(Self.image(index), for: try JobID(id), index: index, ttl: .seconds(60))
            results.append(JobResult(contentType: "image/png", bytes: Self.image(index).count, store: "redis", key: key))
        }
        var result = results[0]
        result.images = results
        try await worker.complete(job, result: result)
    }

    @Test func eachImageOfAJobIsServedByItsIndex() async throws {
        let setup = try setup()
        defer { setup.redis.close() }
        let worker = setup.worker
        try await Application(router: setup.router).test(.router) { client in
            let (status, created) = try await enqueue(client, #"{"model":"flux","prompt":"three herons","user":"alice","n":3}"#)
            #expect(status == .accepted, "\(created)")
            let id = try #require(created["id"] as? String)
            try await complete(id, count: 3, in: worker)

            for index in 0..<3 {
                try await client.execute(uri: "/v1/jobs/\(id)/image?index=\(index)", method: .get) { response in
                    #expect(response.status == .ok, "\(index): \(String(buffer: response.body))")
                    #expect(response.headers[.contentType] == "image/png")
                    #expect(Array(response.body.readableBytesView) == Self.image(index), "image \(index)")
                }
            }
            // No index: the first image.
            try await client.execute(uri: "/v1/jobs/\(id)/image", method: .get) { response in
                #expect(response.status == .ok && Array(response.body.readableBytesView) == Self.image(0))
            }
            // One past the last: 404 saying how many there are.
            try await client.execute(uri: "/v1/jobs/\(id)/image?index=3", method: .get) { response in
                #expect(response.status == .notFound)
                let body = String(buffer: response.body)
                #expect(body.contains(#""code":"not_found""#) && body.contains("3 images") && body.contains("0 to 2"), "\(body)")
            }
            // Not an index: 400.
            for bad in ["-1", "x", "1.5", ""] {
                try await client.execute(uri: "/v1/jobs/\(id)/image?index=\(bad)", method: .get) { response in
                    #expect(response.status == .badRequest, "index=\(bad)")
                    #expect(String(buffer: response.body).contains(#""code":"invalid_index""#), "index=\(bad)")
                }
            }
            // The job's record says how many it makes and lists them in its result.
            try await client.execute(uri: "/v1/jobs/\(id)", method: .get) { response in
                let job = (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] ?? [:]
                #expect(job["n"] as? Int == 3)
                #expect(((job["result"] as? [String: Any])?["images"] as? [Any])?.count == 3, "\(job)")
            }
        }
    }

    @Test func aOneImageJobHasOnlyIndexZeroAndABadNIsA400() async throws {
        let setup = try setup()
        defer { setup.redis.close() }
        let worker = setup.worker
        try await Application(router: setup.router).test(.router) { client in
            let (status, created) = try await enqueue(client, #"{"model":"flux","prompt":"one heron","user":"alice"}"#)
            #expect(status == .accepted, "\(created)")
            let id = try #require(created["id"] as? String)
            try await complete(id, count: 1, in: worker)
            try await client.execute(uri: "/v1/jobs/\(id)/image?index=0", method: .get) { response in
                #expect(response.status == .ok && Array(response.body.readableBytesView) == Self.image(0))
            }
            try await client.execute(uri: "/v1/jobs/\(id)/image?index=1", method: .get) { response in
                #expect(response.status == .notFound && String(buffer: response.body).contains("1 image"), "\(String(buffer: response.body))")
            }

            for (n, words) in [("0", "1 to 4"), ("5", "1 to 4"), (#""x""#, "wrong type for 'n'"), ("null", "'n' is null")] {
                let (status, answer) = try await enqueue(client, #"{"model":"flux","prompt":"too many herons","user":"alice","n":\#(n)}"#)
                #expect(status == .badRequest, "n = \(n): \(answer)")
                let message = ((answer["error"] as? [String: Any])?["message"] as? String) ?? "\(answer)"
                #expect(message.contains(words), "n = \(n): \(message)")
            }
        }
    }
}
