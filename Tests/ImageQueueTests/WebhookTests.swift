@testable import ImageQueue
import RedisClient
import Testing
import TestSupport

/// Webhook URLs checked at enqueue, and the outbox scripts (claimWebhook, settleWebhook, the
/// terminal scripts' queueWebhook) on a real Redis.
@Suite(.runsClients) struct WebhookTests {
    // MARK: - Validation

    @Test(arguments: [
        "http://127.0.0.1:8080/hook", "http://127.255.1.2/", "http://10.1.2.3/", "http://172.16.0.1/", "http://172.31.255.255/",
        "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/", "http://0.0.0.0/",
        "http://168.63.129.16/", "http://224.0.0.1/", "http://255.255.255.255/",
        "http://[::1]/", "http://[::]/", "http://[fc00::1]/", "http://[fd00:ec2::254]/", "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/", "http://[::ffff:10.0.0.1]/", "http://[64:ff9b::a9fe:a9fe]/",
        "http://localhost:8080/", "http://LOCALHOST./", "http://api.localhost/", "http://metadata.google.internal/computeMetadata/v1/",
        // inet_aton's forms of 127.0.0.1, which resolvers (and libcurl) accept.
        "http://2130706433/", "http://0x7f.1/", "http://127.1/",
    ])
    func refusedAddressesAreInvalidWebhooks(url: String) {
        let error = #expect(throws: ImageQueueError.self) { try WebhookTarget(url, allowHosts: []) }
        #expect(error?.code == .invalidWebhook, "\(url)")
        #expect(error?.message.hasPrefix("webhook_url refused: ") == true, "\(error?.message ?? "")")
        #expect(error?.isValidation == true)
    }

    @Test(arguments: [
        "ftp://example.com/x", "javascript:alert(1)", "https://", "http:///path", "http://exa mple.com/", "http://host:0/",
        "http://host:99999/", "http://host:12ab/", "http://[::1/", "http://[fe80::1%25eth0]/", "example.com/hook",
        "http://ex\u{E4}mple.com/", "",
    ])
    func malformedURLsAndOtherSchemesAreInvalidWebhooks(url: String) {
        let error = #expect(throws: ImageQueueError.self) { try WebhookTarget(url, allowHosts: []) }
        #expect(error?.code == .invalidWebhook, "\(url)")
    }

    @Test func publicAddressesPassAndTheAllowListAdmitsALoopbackHost() throws {
        // Literals: no DNS lookup is made for them.
        #expect(try WebhookTarget("https://93.184.216.34/hook", allowHosts: []).host == "93.184.216.34")
        #expect(try WebhookTarget("HTTPS://[2606:4700::1111]:8443/x", allowHosts: []).port == 8443)
        #expect(try WebhookTarget("http://8.8.8.8", allowHosts: []).path == "")
        let allowed = WebhookTarget.allowList("127.0.0.1, [::1] Example.COM.,")
        #expect(allowed == ["127.0.0.1", "::1", "example.com"])
        #expect(try WebhookTarget("http://127.0.0.1:8080/hook", allowHosts: allowed).scheme == "http")
        #expect(try WebhookTarget("http://[::1]:9/", allowHosts: allowed).host == "::1")
        // The host as written must be listed: another spelling of the same address is not.
        #expect(throws: ImageQueueError.self) { try WebhookTarget("http://127.0.0.2/", allowHosts: allowed) }
        #expect(throws: ImageQueueError.self) { try WebhookTarget("http://localhost/", allowHosts: allowed) }
    }

    @Test func theDeliveryCheckTellsARefusedAddressFromAnUnresolvedName() throws {
        let refused = try #require(WebhookTarget.deliveryRefusal("http://10.0.0.1/hook", allowHosts: []))
        #expect(refused.permanent && refused.reason.contains("10.0.0.0/8"))
        #expect(WebhookTarget.deliveryRefusal("gopher://example.com/", allowHosts: [])?.permanent == true)
        // `.invalid` never resolves (RFC 6761): retried later, not given up.
        let unresolved = try #require(WebhookTarget.deliveryRefusal("https://no-such-host.invalid/hook", allowHosts: []))
        #expect(!unresolved.permanent && unresolved.reason.contains("does not resolve"), "\(unresolved)")
        #expect(WebhookTarget.deliveryRefusal("http://127.0.0.1:9/hook", allowHosts: ["127.0.0.1"]) == nil)
        #expect(WebhookTarget.deliveryRefusal("https://93.184.216.34/hook", allowHosts: []) == nil)
    }

    @Test func redactionDropsCredentialsQueryAndFragment() {
        #expect(WebhookTarget.redacted("https://user:secret@Hooks.Example.com:8443/p/a?token=s3cr3t#frag")
            == "https://hooks.example.com:8443/p/a")
        #expect(WebhookTarget.redacted("http://[::1]/x?y") == "http://[::1]/x")
        #expect(WebhookTarget.redacted("not a url") == "<unparseable URL>")
    }

    @Test func aRefusedWebhookWritesNothingAndAnAllowedOneIsStoredOnTheJob() async throws {
        let queue = try QueueFixture(rateLimit: .init(requests: 10, window: .seconds(60))) { $0.webhookAllowHosts = ["127.0.0.1"] }
        defer { queue.close() }
        let error = await #expect(throws: ImageQueueError.self) {
            try await queue.client.enqueue(JobRequest(model: "flux", prompt: "p", user: "u", webhookURL: "http://10.0.0.7/hook"))
        }
        #expect(error?.code == .invalidWebhook)
        let batch = try await queue.client.enqueue(batch: [JobRequest(model: "flux", prompt: "p", user: "u",
                                                                      webhookURL: "http://169.254.169.254/")])
        #expect(throws: ImageQueueError.self) { try batch[0].get() }
        #expect(try await queue.allKeys().isEmpty, "nothing written, the rate limit not counted")

        let url = "http://127.0.0.1:9/hook?token=s3cr3t"
        let job = try await queue.client.enqueue(JobRequest(model: "flux", prompt: "p", user: "u", webhookURL: url))
        #expect(try await queue.hash(job.id)["webhook"] == url)
        let info = try await queue.client.inspector.status(job.id)
        #expect(info.webhook == WebhookStatus(url: "http://127.0.0.1:9/hook", state: "waiting", attempts: 0))
        #expect(try await queue.redis.send("ZCARD", queue.keys.webhooks("flux")).int == 0, "not queued before the job ends")

        // A name that does not resolve now (`.invalid` never does, RFC 6761) is accepted at
        // enqueue: every delivery checks it again and retries while it does not resolve.
        let later = try await queue.client.enqueue(JobRequest(model: "flux", prompt: "p", user: "u",
                                                              webhookURL: "https://hooks.no-such-host.invalid/h"))
        #expect(try await queue.hash(later.id)["webhook"] == "https://hooks.no-such-host.invalid/h")
        #expect(throws: ImageQueueError.self) { try WebhookTarget("https://hooks.no-such-host.invalid/h", allowHosts: []) }
    }

    // MARK: - The outbox

    /// A fixture whose jobs may name 127.0.0.1, and an outbox on its Redis.
    func outboxFixture() throws -> (QueueFixture, WebhookOutbox) {
        let queue = try QueueFixture { $0.webhookAllowHosts = ["127.0.0.1"] }
        return (queue, runInTest(WebhookOutbox(redis: queue.redisConfiguration, configuration: queue.configuration)))
    }

    func enqueueWithWebhook(_ queue: QueueFixture, _ prompt: String = "p") async throws -> String {
        try await queue.client.enqueue(JobRequest(model: "flux", prompt: prompt, user: "u", webhookURL: "http://127.0.0.1:9/h")).id
    }

    func serverTime(_ queue: QueueFixture) async throws -> Int64 {
        let time = try await queue.redis.send("TIME").array ?? []
        return (Int64(time.first?.string ?? "") ?? 0) * 1000 + (Int64(time.last?.string ?? "") ?? 0) / 1000
    }

    func outboxScore(_ queue: QueueFixture, _ id: String) async throws -> Int64? {
        try await queue.redis.send("ZSCORE", queue.keys.webhooks("flux"), id).string.flatMap { Int64($0) }
    }

    /// Makes the delivery due now, as if its lease or backoff had passed.
    func makeDue(_ queue: QueueFixture, _ id: String) async throws {
        try await queue.redis.send("ZADD", queue.keys.webhooks("flux"), "XX", "1", id)
    }

    @Test func completionQueuesTheFinalEventAndAClaimLeasesIt() async throws {
        let (queue, outbox) = try outboxFixture()
        defer { queue.close() }
        let id = try await enqueueWithWebhook(queue)
        let plain = try await queue.enqueue("no webhook")
        let worker = queue.worker()
        try await worker.complete(try await queue.claim(worker), result: sampleResult)
        try await worker.complete(try await queue.claim(worker), result: sampleResult)

        let hash = try await queue.hash(id)
        #expect(hash["webhook_state"] == "pending" && hash["webhook_attempts"] == "0")
        #expect(hash["webhook_body"] == hash["event"], "the body is the final event as stored")
        #expect(try await outboxScore(queue, id) != nil)
        #expect(try await outboxScore(queue, plain.id) == nil)
        #expect(try await queue.redis.send("LLEN", queue.keys.webhookWake("flux")).int == 1, "an idle deliverer is woken")
        #expect(try await outbox.waitForDeliveries(model: "flux", timeout: .seconds(5)))

        let before = try await serverTime(queue)
        let (claimed, nextDue) = try await outbox.claim(model: "flux", limit: 8, lease: .seconds(30))
        try #require(claimed.count == 1)
        #expect(claimed[0].jobID == id && claimed[0].url == "http://127.0.0.1:9/h" && claimed[0].attempts == 0)
        #expect(String(decoding: claimed[0].body, as: UTF8.self) == hash["event"])
        let event = try StatusEvent(json: claimed[0].body)
        #expect(event.status == .completed && event.id == id)
        // Leased: due again only when the lease passes, so nobody else takes it meanwhile.
        let score = try #require(try await outboxScore(queue, id))
        #expect(score >= before + 29_000 && score <= before + 31_000 + 5_000)
        #expect(nextDue != nil && nextDue! > .seconds(25))
        let again = try await outbox.claim(model: "flux", limit: 8, lease: .seconds(30))
        #expect(again.deliveries.isEmpty)
        #expect(try await queue.hash(id)["webhook_first_attempt_at"] != nil)
    }

    @Test func settlementIsFencedByTheLatestClaim() async throws {
        let (queue, outbox) = try outboxFixture()
        defer { queue.close() }
        let id = try await enqueueWithWebhook(queue)
        let worker = queue.worker()
        try await worker.complete(try await queue.claim(worker), result: sampleResult)
        let first = try #require(try await outbox.claim(model: "flux", limit: 1, lease: .seconds(30)).deliveries.first)
        try await makeDue(queue, id)  // the first deliverer's lease passed: another takes it
        let second = try #require(try await outbox.claim(model: "flux", limit: 1, lease: .seconds(30)).deliveries.first)
        #expect(first.claim != second.claim)

        let late = await #expect(throws: ImageQueueError.self) {
            try await outbox.settle(first, .delivered(status: 200), retryWindow: .seconds(3600))
        }
        #expect(late?.code == .staleToken)
        #expect(try await queue.hash(id)["webhook_state"] == "pending", "the stale claim changed nothing")
        #expect(try await queue.hash(id)["webhook_attempts"] == "0")

        let outcome = try await outbox.settle(second, .failed(status: 500, error: nil), retryWindow: .seconds(3600), jitter: 0.5)
        #expect(outcome == .retry(attempts: 1, delay: .seconds(1)))
        let hash = try await queue.hash(id)
        #expect(hash["webhook_last_status"] == "500" && hash["webhook_attempts"] == "1" && hash["webhook_claim"] == "")
        // Settled once: a repeat of the same claim is stale too.
        let repeated = await #expect(throws: ImageQueueError.self) {
            try await outbox.settle(second, .delivered(status: 200), retryWindow: .seconds(3600))
        }
        #expect(repeated?.code == .staleToken)
    }

    @Test func backoffDoublesFromASecondWithJitterAndIsCappedAtTenMinutes() async throws {
        let (queue, outbox) = try outboxFixture()
        defer { queue.close() }
        let id = try await enqueueWithWebhook(queue)
        let worker = queue.worker()
        try await worker.complete(try await queue.claim(worker), result: sampleResult)
        var delays: [Int64] = []
        for attempt in 1...12 {
            try await makeDue(queue, id)
            let delivery = try #require(try await outbox.claim(model: "flux", limit: 1, lease: .seconds(30)).deliveries.first)
            #expect(delivery.attempts == attempt - 1)
            let before = try await serverTime(queue)
            let outcome = try await outbox.settle(delivery, .failed(status: nil, error: "connectionFailed: refused"),
                                                  retryWindow: .seconds(365 * 24 * 3600), jitter: 0.5)
            guard case .retry(let attempts, let delay) = outcome else { Issue.record("\(outcome)"); return }
            #expect(attempts == attempt)
            delays.append(delay.wholeMilliseconds)
            let score = try #require(try await outboxScore(queue, id))
            #expect(score >= before + delay.wholeMilliseconds && score <= before + delay.wholeMilliseconds + 5_000)
        }
        #expect(delays == [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 512000, 600000, 600000])
        #expect(try await queue.hash(id)["webhook_last_error"] == "connectionFailed: refused")
        // Jitter moves a delay by up to ±20 %, never past the cap.
        for (jitter, expected) in [(0.0, Int64(480_000)), (1.0, Int64(600_000))] {
            try await makeDue(queue, id)
            let delivery = try #require(try await outbox.claim(model: "flux", limit: 1, lease: .seconds(30)).deliveries.first)
            let outcome = try await outbox.settle(delivery, .failed(status: 503, error: nil), retryWindow: .seconds(365 * 24 * 3600),
                                                  jitter: jitter)
            #expect(outcome == .retry(attempts: delivery.attempts + 1, delay: .milliseconds(expected)), "\(jitter)")
        }
    }

    @Test func deliveriesGiveUpAfterTheRetryWindowOrWhenRefusedAndRecordDelivery() async throws {
        let (queue, outbox) = try outboxFixture()
        defer { queue.close() }
        let worker = queue.worker()
        var ids: [String] = []
        for n in 0..<3 {
            let id = try await enqueueWithWebhook(queue, "p\(n)")
            try await worker.complete(try await queue.claim(worker), result: sampleResult)
            ids.append(id)
        }
        let claimed = try await outbox.claim(model: "flux", limit: 8, lease: .seconds(30)).deliveries
        try #require(claimed.map(\.jobID).sorted() == ids.sorted())
        let byID = Dictionary(uniqueKeysWithValues: claimed.map { ($0.jobID, $0) })

        // A window that ends before the next attempt: given up at the first failure.
        #expect(try await outbox.settle(byID[ids[0]]!, .failed(status: 500, error: nil), retryWindow: .zero) == .gaveUp(attempts: 1))
        // An address refused at delivery: given up at once, with the reason.
        #expect(try await outbox.settle(byID[ids[1]]!, .refused(error: "webhook_url refused: 10.0.0.1 is private"),
                                        retryWindow: .seconds(3600)) == .gaveUp(attempts: 1))
        #expect(try await outbox.settle(byID[ids[2]]!, .delivered(status: 204), retryWindow: .seconds(3600)) == .delivered(attempts: 1))
        for id in ids { #expect(try await outboxScore(queue, id) == nil, "\(id) left the outbox") }
        #expect(try await outbox.claim(model: "flux", limit: 8, lease: .seconds(30)).nextDue == nil, "the outbox is empty")

        let gaveUp = try await queue.client.inspector.status(ids[0]).webhook
        #expect(gaveUp?.state == "gave_up" && gaveUp?.attempts == 1 && gaveUp?.lastStatus == 500 && gaveUp?.deliveredAt == nil)
        let refused = try await queue.client.inspector.status(ids[1]).webhook
        #expect(refused?.state == "gave_up" && refused?.lastError == "webhook_url refused: 10.0.0.1 is private" && refused?.lastStatus == nil)
        let delivered = try #require(try await queue.client.inspector.status(ids[2]).webhook)
        #expect(delivered.state == "delivered" && delivered.lastStatus == 204 && delivered.deliveredAt != nil)
        #expect(delivered.lastAttemptAt == delivered.deliveredAt)
    }

    @Test func failureCancelAndExpiryQueueTheirFinalEventsToo() async throws {
        let (queue, outbox) = try outboxFixture()
        defer { queue.close() }
        let worker = queue.worker()
        let failed = try await enqueueWithWebhook(queue, "fails")
        _ = try await worker.fail(try await queue.claim(worker), error: JobError(code: "boom", message: "no"), retryable: false)
        let cancelled = try await enqueueWithWebhook(queue, "cancelled while queued")
        try await queue.client.cancel(cancelled)
        let expired = try await queue.client.enqueue(JobRequest(model: "flux", prompt: "expires", user: "u",
                                                                webhookURL: "http://127.0.0.1:9/h")).id
        _ = try await queue.claim(worker)
        try await queue.redis.send("HSET", queue.keys.job(try JobID(expired)), "max_attempts", "1")
        try await queue.expireLease(of: expired)
        #expect(try await worker.recoverExpired(model: "flux").dead == 1)

        let claimed = try await outbox.claim(model: "flux", limit: 8, lease: .seconds(30)).deliveries
        var statuses: [String: JobStatus] = [:]
        for delivery in claimed { statuses[delivery.jobID] = try StatusEvent(json: delivery.body).status }
        #expect(statuses == [failed: .failed, cancelled: .cancelled, expired: .failed])

        // A later event (retryDead's `queued`) does not change the body being delivered.
        let body = try await queue.hash(failed)["webhook_body"]
        #expect(try await queue.client.retryDead(model: "flux", id: failed) == 1)
        #expect(try await queue.hash(failed)["webhook_body"] == body)
        #expect(try await queue.hash(failed)["event"] != body)
    }

    @Test func claimRemovesEntriesWhoseJobIsGoneAndAPeekClaimsNothing() async throws {
        let (queue, outbox) = try outboxFixture()
        defer { queue.close() }
        let id = try await enqueueWithWebhook(queue)
        let worker = queue.worker()
        try await worker.complete(try await queue.claim(worker), result: sampleResult)
        let peek = try await outbox.claim(model: "flux", limit: 0, lease: .seconds(30))
        #expect(peek.deliveries.isEmpty && peek.nextDue == .zero)
        #expect(try await queue.hash(id)["webhook_claim"] == "", "a peek claims nothing")
        try await queue.redis.send("DEL", queue.keys.job(try JobID(id)))
        let claimed = try await outbox.claim(model: "flux", limit: 8, lease: .seconds(30))
        #expect(claimed.deliveries.isEmpty && claimed.nextDue == nil)
        #expect(try await outboxScore(queue, id) == nil)
    }
}
