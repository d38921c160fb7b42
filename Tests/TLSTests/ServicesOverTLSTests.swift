import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The long-running processes of the release binaries (workers, `serve`, `telegram`) over
/// `rediss://`, each test on a TLS-only redis-server of its own.
@Suite("TLS: worker, serve and telegram over rediss://")
struct ServicesOverTLSTests {
    /// `imagequeue worker` and the lean `imagequeue-worker`.
    static let workers = ["imagequeue worker", "imagequeue-worker"]

    @Test("a worker on mutual TLS completes a job enqueued over TLS, through the fake Flux", arguments: workers)
    func workerCompletesAJob(_ executable: String) async throws {
        let world = try await TLSWorld.start(label: "tw", authClients: true)
        defer { world.cli.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        let arguments = ["--models", "flux,sdxl", "--backend", "http", "--output-dir", try world.cli.outputDirectory(),
                         "--id", "\(world.cli.prefix)-w1"]
        let worker = executable == "imagequeue-worker"
            ? try world.startStandaloneWorker(arguments, environment: fake.environment())
            : try world.startWorker(arguments, environment: fake.environment())

        let id = try await world.enqueue("a lighthouse behind tls", model: "flux")
        let done = try await world.waitForStatus(id, "completed")
        #expect(done["status"]?.string == "completed", "\(done)\nworker output:\n\(worker.output)")
        #expect(try await waitForRequest(fake, "flux", prompt: "a lighthouse behind tls"), "the fake Flux got the prompt")
        let path = try #require(done["result"]?["path"]?.string, "\(done)")
        #expect(FileManager.default.fileExists(atPath: path), "the image at \(path)")
        let workers = try await world.json(["workers", "--json"])
        #expect(workers.array?.contains { $0["id"]?.string == "\(world.cli.prefix)-w1" } == true, "registered over TLS: \(workers)")

        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()
        #expect(ended == .exited(0), "worker output:\n\(worker.output)")
    }

    @Test("a worker's config file may hold the rediss:// URL and the TLS files")
    func workerTakesTheRedisSettingsFromItsConfigFile() async throws {
        let world = try await TLSWorld.start(label: "tf", authClients: true)
        defer { world.cli.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        let file = "\(world.material.directory)/worker-\(world.cli.prefix).conf"
        let lines = ["IMAGEQUEUE_REDIS_URL=\(world.cli.redisURL)"] + world.tls.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        // Neither --redis nor any IMAGEQUEUE_REDIS_* in the environment: all from the file.
        let worker = try SpawnedProcess(TestEnvironment.standaloneWorkerBinary().path,
                                        ["--config", file, "--prefix", world.cli.prefix, "--models", "flux", "--backend", "http",
                                         "--output-dir", try world.cli.outputDirectory()],
                                        environment: QueueCLI.environment(fake.environment()))
        let id = try await world.enqueue("a lighthouse from the config file", model: "flux")
        let done = try await world.waitForStatus(id, "completed")
        #expect(done["status"]?.string == "completed", "\(done)\nworker output:\n\(worker.output)")
        worker.send(SIGTERM)
        #expect(try await worker.waitForExit() == .exited(0), "worker output:\n\(worker.output)")
    }

    @Test("serve over TLS: /readyz is 200, POST /v1/jobs is accepted and the job is in Redis")
    func serveOverTLS() async throws {
        let world = try await TLSWorld.start(label: "ts")
        let token = "tok-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let server = try await world.startServer(token: token)

        var ready: (status: Int, body: String) = (0, "")
        let isReady = try await eventually {
            ready = try await server.get("/readyz", authorized: false)
            return ready.status == 200
        }
        #expect(isReady, "/readyz: \(ready.status) \(ready.body)\nserve output:\n\(server.process.output)")
        #expect(try ParsedJSON.parse(ready.body) == .object(["status": .string("ready")]), "\(ready.body)")

        let body = #"{"model":"flux","prompt":"a harbour over tls","user":"alice"}"#
        let accepted = try await server.send("POST", "/v1/jobs", json: body)
        try #require(accepted.status == 202, "POST /v1/jobs: \(accepted.status) \(accepted.body)\nserve output:\n\(server.process.output)")
        let id = try #require(try ParsedJSON.parse(accepted.body)["id"]?.string, "\(accepted.body)")

        // In the server itself (redis-cli over TLS), and as the API and the CLI read it.
        let prefix = world.cli.prefix
        #expect(try await world.redis(["ZRANGE", "\(prefix):{flux}:pending", "0", "-1"]) == id)
        #expect(try await world.redis(["EXISTS", "\(prefix):{flux}:job:\(id)"]) == "1")
        let fetched = try await server.get("/v1/jobs/\(id)")
        #expect(fetched.status == 200, "\(fetched.body)")
        #expect(try ParsedJSON.parse(fetched.body)["status"]?.string == "queued", "\(fetched.body)")
        #expect(try await world.status(id)["prompt"]?.string == "a harbour over tls")

        let ended = try await server.stop()
        #expect(ended == .exited(0), "serve output:\n\(server.process.output)")
    }

    @Test("telegram over mutual TLS: an /image= command gets its image delivered as a photo")
    func telegramOverTLS() async throws {
        let world = try await TLSWorld.start(label: "tt", authClients: true)
        defer { world.cli.removeOutputDirectory() }
        let telegram = try await FakeTelegram.start()
        let worker = try world.startWorker(["--models", "flux,sdxl", "--backend", "placeholder", "--lease-seconds", "3",
                                            "--output-dir", try world.cli.outputDirectory(), "--id", "\(world.cli.prefix)-worker"],
                                           environment: ["IMAGEQUEUE_PLACEHOLDER_SIZE": "64", "IMAGEQUEUE_PLACEHOLDER_DELAY": "0"])
        let front = try world.start(["telegram", "--id", "\(world.cli.prefix)-front", "--poll-timeout", "1", "--lease-seconds", "3",
                                     "--edit-interval", "0.2", "--chat-interval", "0.1"],
                                    environment: telegram.environment())
        let command = try await telegram.sendUpdate(text: "/image=flux/a lighthouse over tls")

        @Sendable func messages() async throws -> [[String: Any]] {
            try await telegram.messages().filter { ($0["reply_to"] as? NSNumber)?.int64Value == command.messageID }
        }
        do {
            try await telegram.waitFor("the photo and the finished status message", timeout: .seconds(60)) {
                let replies = try await messages()
                return replies.contains { $0["kind"] as? String == "photo" }
                    && replies.contains { ($0["text"] as? String)?.hasPrefix("✅ Done") == true }
            }
        } catch {
            Issue.record("\(error)\nfront output:\n\(front.output)\nworker output:\n\(worker.output)")
        }
        let replies = try await messages()
        let photo = try #require(replies.first { $0["kind"] as? String == "photo" }, "\(replies)")
        let file = try #require((photo["photo"] as? [String: Any])?["filename"] as? String, "\(photo)")
        let jobID = String(file.split(separator: ".")[0])
        #expect(jobID.hasPrefix("flux-"), "\(file)")
        let job = try await world.status(jobID)
        #expect(job["status"]?.string == "completed", "\(job)")
        #expect(job["user"]?.string == "tg:42", "\(job)")
        #expect(job["prompt"]?.string == "a lighthouse over tls", "\(job)")

        for process in [front, worker] { process.send(SIGTERM) }
        for (name, process) in [("telegram", front), ("worker", worker)] {
            let ended = try await process.waitForExit()
            #expect(ended == .exited(0), "\(name) output:\n\(process.output)")
        }
        let secret = String(telegram.token.split(separator: ":")[1])
        let shown = front.output.contains(secret)
        #expect(!shown, "the bot token's secret in the front's output: \(context(of: secret, in: front.output))")
    }
}
