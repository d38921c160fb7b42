import Hummingbird
import HummingbirdTesting
@testable import ImageQueueServer
import ImageQueue
import Logging
import RedisClient
import Testing
import TestSupport

/// The routes the dashboard's job page, controls and charts use, in process on a real Redis:
/// a job's timeline in GET /v1/jobs/{id}, PUT /v1/queues/{model}/concurrency, GET /v1/stats,
/// the latest completions read from Redis (the same for every server, across restarts) and
/// the page served at /jobs/{id}.
@Suite(.runsClients) struct DashboardRoutesTests {
    static let token = "dashboard-route-token-0123456789"
    static let bearer: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]

    /// A server on `prefix` (a fresh one by default) and a worker side on the same keys.
    func setup(prefix: String = TestEnvironment.uniquePrefix("dash")) throws -> (app: some ApplicationProtocol, worker: WorkerQueue, queue: QueueConfiguration) {
        var queue = QueueConfiguration()
        queue.keyPrefix = prefix
        let redis = try RedisConfiguration(url: TestEnvironment.redisURL())
        let server = try APIServer(configuration: APIServer.Configuration(token: Self.token), redis: redis, queue: queue,
                                   logger: Logger(label: "dashboard-route-tests"))
        for client in server.clients { _ = runInTest(client) }
        let worker = runInTest(WorkerQueue(redis: redis, configuration: queue, workerID: "w1"))
        return (Application(router: server.makeRouter()), worker, queue)
    }

    func json(_ response: TestResponse) throws -> ParsedJSON { try ParsedJSON.parse(String(buffer: response.body)) }

    func enqueue(_ client: some TestClientProtocol, _ prompt: String, model: String = "flux") async throws -> String {
        let body = ByteBuffer(string: #"{"model":"\#(model)","prompt":"\#(prompt)","user":"alice","enhance":false}"#)
        return try await client.execute(uri: "/v1/jobs", method: .post, headers: Self.bearer, body: body) { response in
            #expect(response.status == .accepted, "\(String(buffer: response.body))")
            return try json(response)["id"]?.string ?? ""
        }
    }

    func completeNext(_ worker: WorkerQueue, model: String = "flux") async throws -> ClaimedJob {
        guard case .claimed(let job) = try await worker.claim(model: model, lease: .seconds(30)) else {
            throw TestSetupError("nothing to claim")
        }
        try await worker.complete(job, result: JobResult(contentType: "image/png", bytes: 3, store: "redis", key: "k"))
        return job
    }

    @Test func aJobsStatusCarriesItsWholeTimeline() async throws {
        let (app, worker, _) = try setup()
        try await app.test(.router) { client in
            let id = try await enqueue(client, "a timeline")
            try await client.execute(uri: "/v1/jobs/\(id)", method: .get) { response in
                let history = try json(response)["history"]?.array ?? []
                #expect(history.count == 1 && history[0]["status"]?.string == "queued" && history[0]["attempt"] == .null, "\(history)")
            }
            _ = try await completeNext(worker)
            try await client.execute(uri: "/v1/jobs/\(id)", method: .get) { response in
                let body = try json(response)
                let history = body["history"]?.array ?? []
                #expect(history.compactMap { $0["status"]?.string } == ["queued", "generating", "completed"], "\(history)")
                #expect(history[1]["attempt"]?.integer == 1)
                #expect(history[0]["time"] == body["enqueued_at"] && history[2]["time"] == body["finished_at"], "\(body)")
            }
        }
    }

    @Test func concurrencyIsSetWithTheTokenAndRefusedOutOfRange() async throws {
        let (app, _, _) = try setup()
        try await app.test(.router) { client in
            let body = ByteBuffer(string: #"{"concurrency":3}"#)
            try await client.execute(uri: "/v1/queues/flux/concurrency", method: .put, body: body) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/v1/queues/flux/concurrency", method: .put, headers: Self.bearer, body: body) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                let answer = try json(response)
                #expect(answer["model"]?.string == "flux" && answer["concurrency"]?.integer == 3, "\(answer)")
            }
            try await client.execute(uri: "/v1/queues", method: .get) { response in
                let queues = try json(response)
                #expect(queues["flux"]?["concurrency"]?.integer == 3)
            }
            for (bad, code) in [("0", "invalid_concurrency"), ("1001", "invalid_concurrency"), ("-2", "invalid_concurrency"),
                                ("2.5", "invalid_json"), (#""4""#, "invalid_json"), ("null", "invalid_json")] {
                try await client.execute(uri: "/v1/queues/flux/concurrency", method: .put, headers: Self.bearer,
                                         body: ByteBuffer(string: #"{"concurrency":\#(bad)}"#)) { response in
                    #expect(response.status == .badRequest, "\(bad)")
                    #expect(String(buffer: response.body).contains(#""code":"\#(code)""#), "\(bad): \(String(buffer: response.body))")
                }
            }
            try await client.execute(uri: "/v1/queues/dalle/concurrency", method: .put, headers: Self.bearer, body: body) { response in
                #expect(response.status == .notFound && String(buffer: response.body).contains("unknown_model"))
            }
            try await client.execute(uri: "/v1/queues", method: .get) { response in
                let queues = try json(response)
                #expect(queues["flux"]?["concurrency"]?.integer == 3, "refused calls changed nothing")
            }
        }
    }

    @Test func statsCountTheLastMinutesPerModelAndRefuseABadWindow() async throws {
        let (app, worker, _) = try setup()
        try await app.test(.router) { client in
            for n in 0..<2 { _ = try await enqueue(client, "counted \(n)") }
            for _ in 0..<2 { _ = try await completeNext(worker) }
            try await client.execute(uri: "/v1/stats", method: .get) { response in
                #expect(response.status == .ok)
                let body = try json(response)
                #expect(body["minutes"]?.integer == 60, "60 by default")
                let flux = body["models"]?["flux"]
                #expect(flux?["completed"]?.integer == 2 && flux?["failed"]?.integer == 0, "\(body)")
                #expect(flux?["series"]?.array?.count == 60)
                let counted = flux?["series"]?.array?.compactMap { $0["completed"]?.integer }.reduce(0, +)
                #expect(counted == 2)
                #expect(flux?["run_ms"]?["p50"]?.integer != nil && flux?["wait_ms"]?["p95"]?.integer != nil, "\(String(describing: flux))")
                #expect(body["models"]?["sdxl"]?["run_ms"] == .null)
            }
            try await client.execute(uri: "/v1/stats?minutes=5", method: .get) { response in
                let body = try json(response)
                #expect(body["models"]?["flux"]?["series"]?.array?.count == 5)
            }
            for bad in ["0", "121", "abc", "1.5", "-3", ""] {
                try await client.execute(uri: "/v1/stats?minutes=\(bad)", method: .get) { response in
                    #expect(response.status == .badRequest, "minutes=\(bad)")
                    #expect(String(buffer: response.body).contains(#""code":"invalid_minutes""#), "minutes=\(bad)")
                }
            }
        }
    }

    @Test func theLatestCompletionsComeFromRedisSoEveryServerShowsTheSameAndARestartKeepsThem() async throws {
        let prefix = TestEnvironment.uniquePrefix("dashrecent")
        let (first, worker, _) = try setup(prefix: prefix)
        let ids = try await first.test(.router) { client in
            var ids: [String] = []
            for n in 0..<3 { ids.append(try await enqueue(client, "shared \(n)", model: n == 1 ? "sdxl" : "flux")) }
            _ = try await completeNext(worker)
            _ = try await completeNext(worker, model: "sdxl")
            _ = try await completeNext(worker)
            return ids
        }
        // A server started afterwards (another host, or this one restarted) saw none of the events.
        let (second, _, _) = try setup(prefix: prefix)
        try await second.test(.router) { client in
            try await client.execute(uri: "/v1/dashboard", method: .get) { response in
                let jobs = try json(response)["recent"]?.array ?? []
                let recent = jobs.compactMap { $0["id"]?.string }
                #expect(Set(recent) == Set(ids) && recent.count == 3, "both models: \(recent)")
                let finished = jobs.compactMap { $0["finished_at"]?.integer }
                #expect(finished.count == 3 && finished == finished.sorted(by: >), "newest first: \(jobs)")
            }
        }
    }

    @Test func thePageIsServedAtAJobsPathToo() async throws {
        let (app, _, _) = try setup()
        try await app.test(.router) { client in
            let root = try await client.execute(uri: "/", method: .get) { String(buffer: $0.body) }
            try await client.execute(uri: "/jobs/flux-01jdx5w7k3q9m2v8r4t6y0z1ab", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                #expect(response.headers[.contentSecurityPolicy] != nil)
                #expect(String(buffer: response.body) == root, "the same page")
            }
        }
    }
}
