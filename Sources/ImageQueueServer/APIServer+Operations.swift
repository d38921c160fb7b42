import FoundationEssentials
import Hummingbird
import ImageQueue
import Prometheus
import RedisClient

/// `GET /v1/dashboard`: one snapshot for the dashboard page.
struct DashboardSnapshot: Encodable {
    let queues: [String: QueueStats]
    let workers: [WorkerInfo]
    let running: [JobInfo]
    let recent: [JobInfo]
    let failed: [JobInfo]
    let generatedAt: Int64

    enum CodingKeys: String, CodingKey {
        case queues, workers, running, recent, failed, generatedAt = "generated_at"
    }
}

/// `POST /v1/queues/{model}/pause` and `/resume`'s answer; `changed` is false when the model
/// already was in that state.
struct PauseAnswer: Encodable {
    let model: String
    let paused: Bool
    let changed: Bool
}

/// `PUT /v1/queues/{model}/concurrency`'s body (other properties are ignored).
struct ConcurrencyBody: Decodable {
    let concurrency: Int

    /// The most the route accepts: far above any real deployment's GPUs.
    static let maximum = 1000
}

/// `PUT /v1/queues/{model}/concurrency`'s answer.
struct ConcurrencyAnswer: Encodable {
    let model: String
    let concurrency: Int
}

/// `POST /v1/dead/{model}/retry`'s optional body: `{}` (retry all) or `{"id": "<job id>"}`.
/// A present `id` must be a string: `{"id": null}` is refused rather than read as "all".
struct RetryBody: Decodable {
    let id: String?

    enum CodingKeys: String, CodingKey { case id }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // decode(String.self) throws valueNotFound for null and typeMismatch for 5, true, [...]
        id = container.contains(.id) ? try container.decode(String.self, forKey: .id) : nil
    }
}

extension APIServer {
    func addOperatorRoutes(to router: RouterGroup<BasicRequestContext>) {
        router.get("/v1/queues") { request, _ -> Response in
            return .json(try await queueCall { try await client.inspector.stats() })
        }

        router.get("/v1/workers") { request, _ -> Response in
            return .json(try await queueCall { try await client.inspector.workers() })
        }

        router.post("/v1/queues/:model/pause") { request, context -> Response in
            let model = try context.parameters.require("model")
            let changed = try await modelRouteCall { try await client.pause(model: model) }
            return .json(PauseAnswer(model: model, paused: true, changed: changed))
        }

        router.post("/v1/queues/:model/resume") { request, context -> Response in
            let model = try context.parameters.require("model")
            let changed = try await modelRouteCall { try await client.resume(model: model) }
            return .json(PauseAnswer(model: model, paused: false, changed: changed))
        }

        router.put("/v1/queues/:model/concurrency") { request, context -> Response in
            let model = try context.parameters.require("model")
            let body: ConcurrencyBody = try await decodeJSON(request)
            guard (1...ConcurrencyBody.maximum).contains(body.concurrency) else {
                throw APIError(.badRequest, "invalid_concurrency",
                               "concurrency must be a whole number from 1 to \(ConcurrencyBody.maximum), not \(body.concurrency)")
            }
            try await modelRouteCall { try await client.setConcurrency(body.concurrency, model: model) }
            return .json(ConcurrencyAnswer(model: model, concurrency: body.concurrency))
        }

        router.get("/v1/stats") { request, _ -> Response in
            // `?minutes=N`, 1 to 120 (the counters live 2 h); absent, 60.
            var minutes = 60
            if let text = request.uri.queryParameters["minutes"] {
                guard let value = Int(text), (1...QueueInspector.maxStatsMinutes).contains(value) else {
                    throw APIError(.badRequest, "invalid_minutes",
                                   "minutes must be a whole number from 1 to \(QueueInspector.maxStatsMinutes), not '\(text.prefix(20))'")
                }
                minutes = value
            }
            return .json(try await queueCall { try await client.inspector.minuteStats(minutes: minutes) })
        }

        router.post("/v1/dead/:model/retry") { request, context -> Response in
            let model = try context.parameters.require("model")
            // The body is optional: an empty one (whatever its content type) retries all.
            let body: RetryBody? = try await decodeJSON(request, allowEmpty: true)
            let id = body?.id
            // An id is checked here: the script reads an empty one as "every dead job".
            if let id {
                do throws(ImageQueueError) { _ = try JobID(id) } catch { throw APIError.from(error) }
            }
            let count = try await modelRouteCall { try await client.retryDead(model: model, id: id) }
            return .json(["retried": count])
        }

        router.delete("/v1/dead/:model") { request, context -> Response in
            let model = try context.parameters.require("model")
            let count = try await modelRouteCall { try await client.purgeDead(model: model) }
            return .json(["purged": count])
        }

        router.get("/v1/dashboard") { request, _ -> Response in
            return .json(try await queueCall { try await dashboard() })
        }

        router.get("/metrics") { request, _ -> Response in
            let text = try await queueCall { try await metricsText() }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }

    }

    /// Liveness and readiness: open to everyone (probes carry no token), whatever `protectReads` says.
    func addProbeRoutes(to router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in Response.json(["status": "ok"]) }

        router.get("/readyz") { _, _ -> Response in
            do {
                try await client.ping()
                // With Sentinel, which master answered, and when this server last saw it move.
                return .json(Readiness(redis: client.sentinelMaster.map {
                    Readiness.Redis(master: $0.address, lastFailoverAt: $0.lastFailoverAt)
                }))
            } catch {
                throw APIError(.serviceUnavailable, "redis_unavailable", "Redis does not answer")
            }
        }
    }

    /// A queue call on `/v1/dead/{model}...`: the path names the model's dead list, so a model
    /// that is not configured is a 404 (code `unknown_model`), like any other unknown resource.
    func modelRouteCall<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await queueCall(body)
        } catch let error as APIError where error.code == "unknown_model" {
            throw APIError(.notFound, error.code, error.message)
        }
    }

    func dashboard() async throws(ImageQueueError) -> DashboardSnapshot {
        let inspector = client.inspector
        let models = client.configuration.models
        var running: [JobInfo] = []
        var failed: [JobInfo] = []
        for model in models {
            running += try await inspector.runningJobs(model: model)
            failed += try await inspector.recentDeadJobs(model: model)
        }
        failed.sort { ($0.finishedAt ?? 0) > ($1.finishedAt ?? 0) }
        let recent = try await inspector.recentCompletions(limit: 24)
        return DashboardSnapshot(queues: try await inspector.stats(), workers: try await inspector.workers(),
                                 running: running.sorted { ($0.startedAt ?? 0) < ($1.startedAt ?? 0) },
                                 recent: recent, failed: Array(failed.prefix(24)), generatedAt: unixTimeMilliseconds())
    }

    /// The whole system's state as Prometheus text, read from Redis (so it covers every worker).
    /// When Redis does not answer, only `imagequeue_redis_up 0`, so that an alert can tell a
    /// Redis outage from a server that is down.
    /// - Throws: `ImageQueueError` other than `.redis`.
    func metricsText() async throws(ImageQueueError) -> String {
        let stats: [String: QueueStats]
        let workers: [WorkerInfo]
        let now: Int64
        do throws(ImageQueueError) {
            stats = try await client.inspector.stats()
            workers = try await client.inspector.workers()
            // Heartbeats are on Redis's clock: judge them on it too, not on this host's.
            now = try await client.inspector.serverTime()
        } catch where error.code == .redis {
            let registry = PrometheusCollectorRegistry()
            registry.makeGauge(name: "imagequeue_redis_up", labels: [], help: "1 when Redis answered this scrape, else 0").set(Int64(0))
            return registry.emitToString()
        }
        let registry = PrometheusCollectorRegistry()
        registry.makeGauge(name: "imagequeue_redis_up", labels: [], help: "1 when Redis answered this scrape, else 0").set(Int64(1))
        let live = workers.filter { now - $0.heartbeatAt < 60_000 }
        for (model, s) in stats.sorted(by: { $0.key < $1.key }) {
            let labels = [("model", model)]
            registry.makeGauge(name: "imagequeue_queue_pending", labels: labels, help: "Jobs waiting in the model's queue").set(Int64(s.pending))
            registry.makeGauge(name: "imagequeue_queue_active", labels: labels, help: "Jobs running (holding a lease)").set(Int64(s.active))
            registry.makeGauge(name: "imagequeue_queue_dead", labels: labels, help: "Jobs in the model's dead list").set(Int64(s.dead))
            registry.makeGauge(name: "imagequeue_queue_concurrency", labels: labels, help: "Jobs of the model allowed to run at once").set(Int64(s.concurrency))
            registry.makeGauge(name: "imagequeue_queue_paused", labels: labels, help: "1 while the model is paused (no claims), else 0")
                .set(Int64(s.paused ? 1 : 0))
            if let average = s.averageRunMilliseconds {
                registry.makeGauge(name: "imagequeue_queue_run_seconds_average", labels: labels,
                                   help: "Moving average of the model's recent run times (claim to completion), behind queued jobs' ETA")
                    .set(Double(average) / 1000)
            }
            registry.makeGauge(name: "imagequeue_queue_oldest_pending_age_seconds", labels: labels,
                               help: "Age of the job at the head of the queue (0 when empty)")
                .set(Double(s.oldestPendingAgeMilliseconds ?? 0) / 1000)
            registry.makeCounter(name: "imagequeue_jobs_completed_total", labels: labels, help: "Jobs completed").increment(by: Int64(s.completedTotal))
            registry.makeCounter(name: "imagequeue_jobs_failed_total", labels: labels, help: "Jobs dead-lettered").increment(by: Int64(s.failedTotal))
            registry.makeGauge(name: "imagequeue_queue_workers_live", labels: labels, help: "Workers registered in the last minute that serve the model")
                .set(Int64(live.filter { $0.models.contains(model) }.count))
        }
        registry.makeGauge(name: "imagequeue_workers_live", labels: [], help: "Workers registered in the last minute").set(Int64(live.count))
        if let master = client.sentinelMaster {
            registry.makeGauge(name: "imagequeue_redis_master", labels: [("address", master.address)],
                               help: "1 for the Redis master (found through Sentinel) this server uses").set(Int64(1))
            registry.makeGauge(name: "imagequeue_redis_last_failover_timestamp_seconds", labels: [],
                               help: "When this server last saw the Sentinel master move, seconds since the epoch (0: not since it started)")
                .set(Double(master.lastFailoverAt ?? 0) / 1000)
        }
        return registry.emitToString()
    }

}

/// The body of `/readyz`: `{"status":"ready"}`, with Sentinel also the master in use.
struct Readiness: Encodable {
    struct Redis: Encodable {
        let master: String
        let lastFailoverAt: Int64?
        enum CodingKeys: String, CodingKey { case master, lastFailoverAt = "last_failover_at" }
    }
    var status = "ready"
    let redis: Redis?
}
