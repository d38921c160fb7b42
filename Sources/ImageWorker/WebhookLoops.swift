import CurlHTTP
import DedicatedThreads
import ImageQueue
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// The worker's webhook deliverer, one service: per model it serves, a loop that claims the
/// due deliveries of the model's outbox (`WebhookOutbox`), POSTs each final event signed
/// (`WebhookSignature`) and settles it. It sleeps in Redis until the earliest delivery is due
/// or the terminal scripts push the outbox's wake list; it never polls.
///
/// Without a secret it delivers nothing: it says so once when deliveries are due, and leaves
/// them (and the wake list) to workers that have one. On graceful shutdown it stops claiming
/// and lets the POSTs in flight finish (each bounded by the timeout); a delivery interrupted
/// harder comes due again when its lease passes.
struct WebhookLoops: Service {
    let outbox: WebhookOutbox
    let http: HTTPClient
    let models: [String]
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let logger: Logger

    /// At most this many deliveries are claimed (and POSTed at once) per model and round.
    static let batch = 8

    func run() async throws {
        await withDiscardingTaskGroup { group in
            for model in models {
                group.addTask { await loop(model) }
            }
        }
    }

    private func loop(_ model: String) async {
        guard let secret = configuration.webhookSecret, !secret.isEmpty else {
            await withoutSecret(model)
            return
        }
        var failures = 0
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                let (deliveries, nextDue) = try await outbox.claim(model: model, limit: Self.batch, lease: configuration.webhookLease)
                failures = 0
                if !deliveries.isEmpty {
                    await withDiscardingTaskGroup { group in
                        for delivery in deliveries {
                            group.addTask { await deliver(delivery, secret: secret) }
                        }
                    }
                    continue
                }
                // Until the earliest delivery is due, or new ones are queued (at most the
                // outbox's longest wait, so a lost wake-up token costs no more than that).
                let wait = nextDue ?? outbox.maxWait
                if wait > .zero {
                    _ = try await cancelWhenGracefulShutdown { try await outbox.waitForDeliveries(model: model, timeout: wait) }
                }
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
                failures += 1
                if failures == 1 {
                    logger.warning("webhook outbox unavailable; retrying",
                                   metadata: ["job.model": "\(model)", "error": "\(RedisRetry.problem(error))"])
                }
                try? await Task.sleep(for: RedisRetry.pause(afterFailures: failures))
            }
        }
    }

    /// Says once that deliveries are due and cannot be signed here, then idles until shutdown:
    /// claims nothing, and hands back the one wake-up it takes (meant for a worker that can sign).
    private func withoutSecret(_ model: String) async {
        var failures = 0
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                let (_, nextDue) = try await outbox.claim(model: model, limit: 0, lease: .seconds(1))
                failures = 0
                if nextDue == .zero {
                    logger.error("webhook deliveries are due but IMAGEQUEUE_WEBHOOK_SECRET is not set: this worker does not deliver them (they stay queued for a worker that has the secret)",
                                 metadata: ["job.model": "\(model)"])
                    try? await gracefulShutdown()  // a service that ends early stops the whole group
                    return
                }
                let wait = nextDue ?? outbox.maxWait
                let woken = try await cancelWhenGracefulShutdown { try await outbox.waitForDeliveries(model: model, timeout: wait) }
                if woken { try await outbox.wake(model: model) }
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                failures += 1
                try? await Task.sleep(for: RedisRetry.pause(afterFailures: failures))
            }
        }
    }

    /// One attempt: check the address again, POST, settle.
    private func deliver(_ delivery: WebhookDelivery, secret: String) async {
        let shown = WebhookTarget.redacted(delivery.url)
        var metadata: Logger.Metadata = ["job.id": "\(delivery.jobID)", "webhook.url": "\(shown)",
                                         "webhook.attempt": "\(delivery.attempts + 1)"]
        let attempt: WebhookAttempt
        if let refusal = await recheck(delivery.url) {
            attempt = refusal.permanent ? .refused(error: refusal.reason) : .failed(status: nil, error: refusal.reason)
        } else {
            var request = HTTPRequest(method: "POST", url: delivery.url, headers: [
                ("Content-Type", "application/json"),
                ("User-Agent", "ImageQueue-Webhook/1"),
                (WebhookSignature.headerName,
                 WebhookSignature.header(secret: secret, timestamp: Int64(time(nil)), body: delivery.body)),
            ], body: delivery.body)
            request.timeout = configuration.webhookTimeout
            request.connectTimeout = min(configuration.connectTimeout, configuration.webhookTimeout)
            request.maxResponseBytes = 64 * 1024
            do {
                let response = try await http.send(request)
                attempt = (200..<300).contains(response.status)
                    ? .delivered(status: response.status) : .failed(status: response.status, error: nil)
            } catch {
                attempt = .failed(status: nil, error: error.description)
            }
        }
        var settlement: WebhookSettlement?
        for failures in 1...5 {
            do {
                settlement = try await outbox.settle(delivery, attempt, retryWindow: configuration.webhookRetryWindow)
                break
            } catch where error.code == .staleToken || error.code == .notFound {
                logger.info("a webhook delivery was settled by a newer claim; this attempt is not recorded", metadata: metadata)
                return
            } catch {
                if failures == 5 {
                    // Not lost: the delivery comes due again when its lease passes.
                    logger.warning("could not record a webhook attempt; it is retried after its lease",
                                   metadata: metadata.merging(["error": "\(error.message)"]) { $1 })
                    return
                }
                try? await Task.sleep(for: RedisRetry.pause(afterFailures: failures))
            }
        }
        guard let settlement else { return }
        switch attempt {
        case .delivered(let status): metadata["http.status"] = "\(status)"
        case .failed(let status, let error):
            if let status { metadata["http.status"] = "\(status)" }
            if let error { metadata["error"] = "\(error)" }
        case .refused(let error): metadata["error"] = "\(error)"
        }
        switch settlement {
        case .delivered:
            metrics.webhookAttempt(model: delivery.model, outcome: "delivered")
            logger.info("webhook delivered", metadata: metadata)
        case .retry(_, let delay):
            metrics.webhookAttempt(model: delivery.model, outcome: "retry")
            metadata["retry.in_ms"] = "\(delay.wholeMilliseconds)"
            logger.notice("webhook delivery failed; retrying", metadata: metadata)
        case .gaveUp:
            metrics.webhookAttempt(model: delivery.model, outcome: "gave_up")
            logger.warning("webhook delivery given up", metadata: metadata)
        }
    }

    /// Why the URL is refused now (its name may resolve elsewhere than at enqueue), or nil.
    private func recheck(_ url: String) async -> (reason: String, permanent: Bool)? {
        let allowed = configuration.queue.webhookAllowHosts
        let check: @Sendable () -> (reason: String, permanent: Bool)? = { WebhookTarget.deliveryRefusal(url, allowHosts: allowed) }
        return await WebhookTarget.offCooperativeThreads(check)
    }
}
