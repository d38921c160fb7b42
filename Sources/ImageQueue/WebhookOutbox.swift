import Logging
import RedisClient
import ServiceLifecycle
import Synchronization

/// One webhook delivery a deliverer has claimed: POST `body` to `url`, then settle it with
/// `claim` (the fencing token of this claim).
public struct WebhookDelivery: Sendable, Equatable {
    /// The job whose final event this is.
    public let jobID: String
    /// Its model.
    public let model: String
    /// The fencing token of this claim (settleWebhook refuses any other).
    public let claim: String
    /// Where to POST it (as the producer gave it: may hold credentials, never log it as is).
    public let url: String
    /// The final event, byte for byte as stored when the job ended.
    public let body: [UInt8]
    /// Attempts settled before this one.
    public let attempts: Int
}

/// How a delivery attempt went, for `WebhookOutbox.settle`.
public enum WebhookAttempt: Sendable, Equatable {
    /// The receiver answered 2xx.
    case delivered(status: Int)
    /// A non-2xx answer (`status`) or no answer (`error`): retried with backoff.
    case failed(status: Int?, error: String?)
    /// The URL is refused now (its host resolves into a refused range): never retried.
    case refused(error: String)
}

/// What settling a delivery did.
public enum WebhookSettlement: Sendable, Equatable {
    /// Done: it left the outbox.
    case delivered(attempts: Int)
    /// Due again after `delay`.
    case retry(attempts: Int, delay: Duration)
    /// No more attempts (the retry window passed, or the URL is refused): it left the outbox.
    case gaveUp(attempts: Int)
}

/// The webhook outbox of every model (`P:{M}:webhooks`, docs/PROTOCOL.md): the scripts that
/// end jobs add their deliveries; deliverers claim the due ones under a lease, POST them and
/// settle them. A delivery is never lost: one whose deliverer dies comes due again when its
/// lease passes, so every delivery is made at least once.
///
/// A `Service`: its command connection and one blocking connection per model (made on first
/// use) live while `run()` runs.
public final class WebhookOutbox: ClosableService {
    let runner: ScriptRunner
    private let redisConfiguration: RedisConfiguration
    private let logger: Logger
    private let waiters = Mutex<[String: any RedisClientProtocol]>([:])
    private let blockingClients = ChildClients()
    /// The longest one wait for new deliveries blocks inside Redis.
    public let maxWait: Duration

    /// Creates the outbox's connections (they connect on first use).
    public init(redis redisConfiguration: RedisConfiguration, configuration: QueueConfiguration = QueueConfiguration(),
                maxWait: Duration = .seconds(30), logger: Logger = Logger(label: "imagequeue.webhooks")) {
        self.redisConfiguration = redisConfiguration
        self.logger = logger
        self.maxWait = maxWait
        runner = ScriptRunner(redis: makeRedisClient(configuration: redisConfiguration, logger: logger), keys: configuration.keys)
    }

    deinit { close() }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.runner.redis.run() }
            group.addTask { await self.blockingClients.run() }
        }
    }

    public func close() {
        runner.redis.close()
        blockingClients.finish()
    }

    /// Claims up to `limit` due deliveries of `model` for `lease`, and says when the next one
    /// is due (nil: the outbox is empty; `.zero`: now). `limit` 0 claims nothing.
    /// - Throws: `ImageQueueError` `.redis`, `.malformed`.
    public func claim(model: String, limit: Int, lease: Duration) async throws(ImageQueueError)
        -> (deliveries: [WebhookDelivery], nextDue: Duration?) {
        let reply = try await runner.run(QueueScripts.claimWebhook, model: model,
                                         arguments: [max(0, min(limit, 100)), max(1, lease.wholeMilliseconds)])
        guard let parts = reply.array, let wait = parts.first?.int, (parts.count - 1) % 5 == 0 else {
            throw ImageQueueError(.malformed, "unexpected reply from claimWebhook: \(reply)")
        }
        var deliveries: [WebhookDelivery] = []
        for start in stride(from: 1, to: parts.count, by: 5) {
            guard let id = parts[start].string, let claim = parts[start + 1].int, let url = parts[start + 2].string,
                  let body = parts[start + 3].bytes else {
                throw ImageQueueError(.malformed, "unexpected delivery in claimWebhook's reply: \(reply)")
            }
            deliveries.append(WebhookDelivery(jobID: id, model: model, claim: String(claim), url: url, body: body,
                                              attempts: Int(parts[start + 4].int ?? 0)))
        }
        return (deliveries, wait < 0 ? nil : .milliseconds(wait))
    }

    /// Records how an attempt went. `retryWindow`: how long after the first attempt retries
    /// stop; `jitter` (0 to 1) spreads the backoff (the delay is its base × (0.8 + 0.4 × jitter)).
    /// - Throws: `ImageQueueError` `.staleToken` (a newer claim owns the delivery, or it was
    ///   settled already: nothing changed), `.notFound`, `.redis`.
    @discardableResult
    public func settle(_ delivery: WebhookDelivery, _ attempt: WebhookAttempt, retryWindow: Duration,
                       jitter: Double = Double.random(in: 0...1)) async throws(ImageQueueError) -> WebhookSettlement {
        let (outcome, status, problem): (String, String, String) = switch attempt {
        case .delivered(let status): ("delivered", String(status), "")
        case .failed(let status, let error): ("failed", status.map(String.init) ?? "", error ?? "")
        case .refused(let error): ("refused", "", error)
        }
        let reply = try await runner.run(QueueScripts.settleWebhook, model: delivery.model,
                                         arguments: [delivery.jobID, delivery.claim, outcome, status, problem,
                                                     max(0, retryWindow.wholeMilliseconds), String(min(max(jitter, 0), 1))],
                                         jobID: delivery.jobID)
        guard let parts = reply.array, let kind = parts.first?.string, parts.count >= 2, let attempts = parts[1].int else {
            throw ImageQueueError(.malformed, "unexpected reply from settleWebhook: \(reply)")
        }
        switch kind {
        case "delivered": return .delivered(attempts: Int(attempts))
        case "retry": return .retry(attempts: Int(attempts), delay: .milliseconds(parts.count > 2 ? parts[2].int ?? 0 : 0))
        default: return .gaveUp(attempts: Int(attempts))
        }
    }

    /// Blocks inside Redis until deliveries of `model` are queued (the terminal scripts push
    /// its wake list) or `timeout` (at most `maxWait`) passes. Returns true when woken.
    /// - Throws: `ImageQueueError` `.redis`.
    public func waitForDeliveries(model: String, timeout: Duration) async throws(ImageQueueError) -> Bool {
        let wait = min(max(timeout, .milliseconds(10)), maxWait)
        let seconds = String(Double(wait.wholeMilliseconds) / 1000)
        do {
            let reply = try await waiter(model: model).send(RedisCommand("BLPOP", runner.keys.webhookWake(model), seconds),
                                                            timeout: wait + .seconds(5))
            return !reply.isNull
        } catch {
            throw ImageQueueError.redis(error, operation: "wait for webhooks")
        }
    }

    /// Pushes the model's wake list (a deliverer that took a wake-up it cannot use hands it on).
    /// - Throws: `ImageQueueError` `.redis`.
    public func wake(model: String) async throws(ImageQueueError) {
        do {
            _ = try await runner.redis.send(RedisCommand("RPUSH", runner.keys.webhookWake(model), "1"))
        } catch {
            throw ImageQueueError.redis(error, operation: "wake webhook deliverers")
        }
    }

    private func waiter(model: String) -> any RedisClientProtocol {
        waiters.withLock { waiters in
            if let existing = waiters[model] { return existing }
            var blocking = redisConfiguration
            blocking.commandTimeout = maxWait + .seconds(5)
            let made = makeRedisClient(configuration: blocking, logger: logger)
            waiters[model] = made
            blockingClients.start(made)
            return made
        }
    }
}
