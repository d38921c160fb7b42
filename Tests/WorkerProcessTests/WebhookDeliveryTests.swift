import CurlHTTP
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Signed webhooks end to end: the release `imagequeue` enqueues with `--webhook`, workers
/// deliver from the outbox to a receiver of ours that checks every signature, answers 500
/// twice per job and then 200; a worker SIGKILLed mid-delivery loses nothing.
@Suite("webhook delivery")
struct WebhookDeliveryTests {
    /// Made per test, never printed: the receiver gets it in its environment.
    let secret = "whsec_" + String(UInt64.random(in: .min ... .max), radix: 36) + String(UInt64.random(in: .min ... .max), radix: 36)
    let allow = ["IMAGEQUEUE_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"]

    func workerEnvironment(timeout: Int) -> [String: String] {
        allow.merging(["IMAGEQUEUE_WEBHOOK_SECRET": secret, "IMAGEQUEUE_WEBHOOK_TIMEOUT": "\(timeout)"]) { $1 }
    }

    func enqueue(_ cli: QueueCLI, _ prompt: String, webhook: String) async throws -> String {
        let result = try await cli.run(["enqueue", "--json", "--model", "flux", "--user", "alice", "--no-enhance",
                                        "--webhook", webhook, prompt], environment: allow)
        try #require(result.status == 0, "enqueue: \(result.stderr)")
        return try #require(try ParsedJSON.parse(result.stdout)["id"]?.string)
    }

    func accepted(_ receiver: WebhookReceiver, _ id: String) async throws -> [WebhookReceiver.Delivery] {
        try await receiver.deliveries().filter { $0.jobID == id && $0.accepted }
    }

    @Test("each ended job's final event is delivered signed, accepted exactly once after two 500s")
    func deliveredOnceAfterRetries() async throws {
        let receiver = try await WebhookReceiver.start(secret: secret)
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let completed = try await enqueue(cli, "a signed lighthouse", webhook: receiver.url)
        let cancelled = try await enqueue(cli, "cancelled before it ran", webhook: receiver.url + "?token=s3cr3t")
        let cancel = try await cli.run(["cancel", cancelled])
        try #require(cancel.status == 0, "cancel: \(cancel.stderr)")

        let metricsPort = try RedisServer.freePort()
        let worker = try cli.startWorker(["--models", "flux", "--backend", "placeholder", "--output-dir", try cli.outputDirectory(),
                                          "--id", "\(cli.prefix)-w1", "--metrics-port", "\(metricsPort)", "--metrics-host", "127.0.0.1"],
                                         environment: workerEnvironment(timeout: 5))
        for id in [completed, cancelled] {
            let status = try await cli.waitForStatus(id, timeout: 60) { $0["webhook"]?["state"]?.string == "delivered" }
            #expect(status["webhook"]?["state"]?.string == "delivered", "\(status)\nworker output:\n\(worker.output)")
            #expect(status["webhook"]?["attempts"]?.integer == 3, "\(status)")
            #expect(status["webhook"]?["last_status"]?.integer == 200, "\(status)")
            #expect(status["webhook"]?["delivered_at"]?.integer != nil, "\(status)")
        }
        // Each settled attempt is counted by its outcome.
        let metrics = try await HTTPClient().send(HTTPRequest(url: "http://127.0.0.1:\(metricsPort)/metrics"))
        let text = String(decoding: metrics.body, as: UTF8.self)
        #expect(sample(text, "imagequeue_worker_webhook_deliveries_total", outcome: "delivered") == 2, "\(text)")
        #expect(sample(text, "imagequeue_worker_webhook_deliveries_total", outcome: "retry") == 4, "\(text)")
        worker.send(SIGTERM)
        #expect(try await worker.waitForExit() == .exited(0), "worker output:\n\(worker.output)")

        let deliveries = try await receiver.deliveries()
        #expect(deliveries.allSatisfy { $0.verified }, "every delivery carries a valid signature")
        #expect(deliveries.allSatisfy { $0.contentType == "application/json" })
        for (id, final) in [(completed, "completed"), (cancelled, "cancelled")] {
            let mine = deliveries.filter { $0.jobID == id }
            #expect(mine.map(\.answer) == [500, 500, 200], "\(id): \(mine)")
            #expect(mine.filter(\.accepted).count == 1, "exactly one accepted delivery of \(id)")
            #expect(Set(mine.map(\.status)) == [final], "the body is the final event")
            #expect(Set(mine.compactMap(\.rev)).count == 1, "every attempt sends the same event (one rev)")
        }
        // The status shows the URL without its query; no log line holds the secret or a signature.
        let status = try await cli.status(cancelled)
        #expect(status["webhook"]?["url"]?.string == receiver.url)
        #expect(!worker.output.contains(secret) && !worker.output.contains("v1=") && !worker.output.contains("s3cr3t"),
                "worker output:\n\(worker.output)")
        let printed = try await cli.run(["status", completed])
        #expect(printed.stdout.contains("webhook   \(receiver.url): delivered, 3 attempts, last answer HTTP 200"), "\(printed.stdout)")
    }

    /// The value of a Prometheus sample of `name` whose labels include `outcome`.
    func sample(_ text: String, _ name: String, outcome: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(name + "{") && $0.contains("outcome=\"\(outcome)\"") }
            .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
    }

    @Test("a worker SIGKILLed while its delivery is held open loses nothing: another delivers it after the lease, once")
    func killedDelivererIsReplaced() async throws {
        let receiver = try await WebhookReceiver.start(secret: secret)
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        try await receiver.hold(1)  // the attempt that would be accepted is held open
        let id = try await enqueue(cli, "delivered by the second worker", webhook: receiver.url)
        let arguments = ["--models", "flux", "--backend", "placeholder", "--output-dir", try cli.outputDirectory()]
        // A 4 s timeout: a 12 s delivery lease.
        let doomed = try cli.startWorker(arguments + ["--id", "\(cli.prefix)-doomed"], environment: workerEnvironment(timeout: 4))
        let held = try await eventually(within: .seconds(60)) { try await receiver.holding() == 1 }
        try #require(held, "no delivery was held; worker output:\n\(doomed.output)")
        doomed.send(SIGKILL)
        #expect(try await doomed.waitForExit() == .signalled(SIGKILL))
        try await receiver.release()  // the dead worker's connection: closed without an answer

        let pending = try await cli.status(id)
        #expect(pending["webhook"]?["state"]?.string == "pending", "\(pending)")
        #expect(pending["webhook"]?["attempts"]?.integer == 2, "the held attempt was never settled: \(pending)")
        #expect(try await accepted(receiver, id).isEmpty)

        let rescuer = try cli.startWorker(arguments + ["--id", "\(cli.prefix)-rescuer"], environment: workerEnvironment(timeout: 4))
        let done = try await cli.waitForStatus(id, timeout: 90) { $0["webhook"]?["state"]?.string == "delivered" }
        rescuer.send(SIGTERM)
        #expect(try await rescuer.waitForExit() == .exited(0), "rescuer output:\n\(rescuer.output)")
        #expect(done["webhook"]?["state"]?.string == "delivered", "\(done)\nrescuer output:\n\(rescuer.output)")
        #expect(done["webhook"]?["attempts"]?.integer == 3, "\(done)")

        let mine = try await receiver.deliveries().filter { $0.jobID == id }
        #expect(mine.map(\.outcome) == ["answered", "answered", "dropped", "answered"], "\(mine)")
        #expect(mine.map(\.answer) == [500, 500, nil, 200], "\(mine)")
        #expect(mine.allSatisfy { $0.verified })
        #expect(mine.filter(\.accepted).count == 1, "exactly one accepted delivery")
        #expect(Set(mine.compactMap(\.rev)).count == 1 && Set(mine.map(\.status)) == ["completed"])
    }

    @Test("a worker without the secret says so once and delivers nothing; a worker with it delivers afterwards")
    func workerWithoutSecretLeavesDeliveriesQueued() async throws {
        let receiver = try await WebhookReceiver.start(secret: secret, failFirst: 0)
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let arguments = ["--models", "flux", "--backend", "placeholder", "--output-dir", try cli.outputDirectory()]
        let unsigned = try cli.startWorker(arguments + ["--id", "\(cli.prefix)-nosecret"], environment: allow)
        let id = try await enqueue(cli, "nobody can sign this yet", webhook: receiver.url)
        let completed = try await cli.waitForStatus(id, "completed")
        try #require(completed["status"]?.string == "completed", "worker output:\n\(unsigned.output)")
        let warned = await unsigned.waitForOutput(containing: "IMAGEQUEUE_WEBHOOK_SECRET is not set", timeout: 60)
        #expect(warned, "worker output:\n\(unsigned.output)")
        let waiting = try await cli.status(id)
        #expect(waiting["webhook"]?["state"]?.string == "pending" && waiting["webhook"]?["attempts"]?.integer == 0, "\(waiting)")
        #expect(try await receiver.deliveries().isEmpty)

        let signer = try cli.startWorker(arguments + ["--id", "\(cli.prefix)-signer"], environment: workerEnvironment(timeout: 5))
        let done = try await cli.waitForStatus(id, timeout: 60) { $0["webhook"]?["state"]?.string == "delivered" }
        #expect(done["webhook"]?["attempts"]?.integer == 1, "\(done)\nworker output:\n\(signer.output)")
        #expect(try await accepted(receiver, id).count == 1)
        for worker in [unsigned, signer] {
            worker.send(SIGTERM)
            #expect(try await worker.waitForExit() == .exited(0), "worker output:\n\(worker.output)")
        }
        #expect(unsigned.output.components(separatedBy: "IMAGEQUEUE_WEBHOOK_SECRET is not set").count == 2, "said once")
    }

    @Test("a private, loopback or metadata webhook is refused at enqueue and nothing is queued")
    func privateAddressRefusedAtEnqueue() async throws {
        let cli = try QueueCLI()
        for url in ["http://10.0.0.7/hook", "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:9/hook",
                    "http://[::1]/hook", "ftp://example.com/hook"] {
            let result = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "--webhook", url, "refused"])
            #expect(result.status == 2, "\(url): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains("webhook_url refused"), "\(url): \(result.stderr)")
            #expect(result.stdout.isEmpty)
        }
        let queues = try await cli.json(["queues", "--json"])
        #expect(queues["flux"]?["pending"] == .integer(0), "\(queues)")
        // The allow-list admits the loopback host, and only that one.
        let allowed = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "--webhook", "http://127.0.0.1:9/hook", "ok"],
                                        environment: allow)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        let other = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "--webhook", "http://localhost:9/hook", "no"],
                                      environment: allow)
        #expect(other.status == 2, "\(other.stderr)")
    }
}
