import ArgumentParser
import ChildProcess
import ImageQueueCommandLine
import ImageQueue
import ImageWorker
import Logging
import RedisClient
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run one prompt end to end: Redis (started if none answers), a worker, live progress, the image path.",
        discussion: """
            With no endpoint variables set, the worker uses the built-in placeholder backend: an offline \
            enhancer and a real PNG rendered from the prompt. With FLUX_WORKER_URL (and SDXL_WORKER_URL, \
            SDXL_API_KEY, LLM_PROVIDER...) set, the same flow uses the real backends.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The model (flux or sdxl).")
    var model = "flux"

    @Option(name: .customLong("output-dir"), help: "Where the image is written.")
    var outputDirectory = "imagequeue-output"

    @Flag(name: .customLong("no-enhance"), help: "Use the prompt as written.")
    var noEnhance = false

    @Option(name: .customLong("n"), help: ArgumentHelp("How many images to make, 1 to \(JobRequest.maxImageCount).", valueName: "n"))
    var imageCount = 1

    @Argument(help: "The prompt.")
    var prompt: String

    func run() async throws {
        var queueConfiguration = try global.queueConfiguration()
        queueConfiguration.rateLimit = nil
        let request = JobRequest(model: model, prompt: prompt, user: "demo", enhance: !noEnhance, imageCount: imageCount)
        do {
            try request.validate(against: queueConfiguration)
        } catch {
            throw CommandFailure(status: 2, message: error.message)
        }
        let (redisConfiguration, throwaway) = try await redisForDemo()
        do {
            try await runJob(request, queueConfiguration: queueConfiguration, redisConfiguration: redisConfiguration)
        } catch {
            throwaway?.stop()
            throw error
        }
        throwaway?.stop()
    }

    /// The configured Redis if it answers, else a throwaway server of our own.
    private func redisForDemo() async throws -> (RedisConfiguration, ThrowawayRedis?) {
        let configured = try global.redisConfiguration(clientName: "imagequeue-demo")
        if try await answers(configured) {
            Output.line("redis     \(configured.endpoint)")
            return (configured, nil)
        }
        let explicit = global.redisURL != nil || Settings.process["IMAGEQUEUE_REDIS_URL"] != nil
        if explicit { throw CommandFailure(status: 1, message: "Redis at \(configured.endpoint) does not answer") }
        let server = try await ThrowawayRedis.start()
        Output.line("redis     started a throwaway redis-server on \(server.url) (removed at the end)")
        return (try RedisConfiguration(url: server.url, clientName: "imagequeue-demo"), server)
    }

    private func workerConfiguration(_ queueConfiguration: QueueConfiguration) throws -> WorkerConfiguration {
        var configuration = try WorkerConfiguration.load(environment: Settings.process.values)
        configuration.queue = queueConfiguration
        configuration.outputDirectory = outputDirectory
        let endpointSet = model == "flux" ? configuration.fluxURL != nil : configuration.sdxlURL != nil
        if !endpointSet {
            configuration.backend = .placeholder
            if configuration.placeholderDelay == .zero { configuration.placeholderDelay = .milliseconds(400) }
        }
        Output.line("backend   " + (configuration.backend == .placeholder
            ? "placeholder (offline; set FLUX_WORKER_URL or SDXL_WORKER_URL + SDXL_API_KEY for real images)"
            : "http, \(model) endpoint from the environment, enhancer: \(configuration.llmProvider.rawValue)"))
        return configuration
    }

    private func runJob(_ request: JobRequest, queueConfiguration: QueueConfiguration,
                        redisConfiguration: RedisConfiguration) async throws {
        let configuration = try workerConfiguration(queueConfiguration)
        var logger = Logger(label: "imagequeue.demo")
        logger.logLevel = .error
        let worker = try ImageWorker(configuration: configuration, redis: redisConfiguration, models: [model],
                                     workerID: "demo-\(getpid())", logger: logger)
        let group = ServiceGroup(configuration: .init(services: worker.services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigint, .sigterm], logger: logger))
        // The worker runs beside the job's follower, and is shut down gracefully once the job has ended.
        let outcome = await withDiscardingTaskGroup { tasks -> Result<StatusEvent, any Error> in
            tasks.addTask { try? await group.run() }
            let outcome: Result<StatusEvent, any Error>
            do {
                outcome = .success(try await ImageQueueClient.with(redis: redisConfiguration, configuration: queueConfiguration,
                                                                   logger: logger) { client in
                    try await follow(request, client: client)
                })
            } catch {
                outcome = .failure(error)
            }
            await group.triggerGracefulShutdown()
            return outcome
        }

        let final = try outcome.get()
        guard final.status == .completed, let result = final.result else {
            throw CommandFailure(status: 1, message: "job \(final.id) did not complete: \(final.error?.message ?? final.status.rawValue)")
        }
        // One line per image.
        for image in result.allImages {
            Output.line("image     \(image.path ?? image.key ?? "?")\(image.placeholder == true ? "  (placeholder)" : "")")
        }
    }

    /// Enqueues and prints every event, from the first, until the job ends; returns the last.
    private func follow(_ request: JobRequest, client: ImageQueueClient) async throws -> StatusEvent {
        let (job, events) = try await client.enqueueAndWatch(request)
        Output.line("job       \(job.id)")
        var final: StatusEvent?
        for try await event in events {
            final = event
            Output.line(Self.describe(event))
            Output.flush()
        }
        guard let final else { throw CommandFailure(status: 1, message: "no events for job \(job.id)") }
        return final
    }

    private func answers(_ configuration: RedisConfiguration) async throws -> Bool {
        var probe = configuration
        probe.reconnectDeadline = .milliseconds(300)
        probe.connectTimeout = .milliseconds(500)
        let connection = makeRedisClient(configuration: probe, logger: Logger(label: "imagequeue.demo.probe"))
        do {
            _ = try await withRunning([connection]) { try await connection.send("PING") }
            return true
        } catch let error as RedisError where error.kind == .connectionFailed {
            return false
        }
    }

    static func describe(_ event: StatusEvent) -> String {
        let status = event.status.rawValue.padding(9)
        switch event.status {
        case .queued: return "\(status) position \(event.position ?? 0)"
        case .enhancing: return "\(status) improving the prompt"
        case .generating:
            // A progress report says only how far the render is (the prompt was shown once).
            if let percent = event.progressPercent { return "\(status) \(percent) %" }
            var text = "\(status) "
            if let prompt = event.enhancedPrompt { text += "prompt: \(prompt)" } else { text += "generating the image" }
            if case .object(let enhancement)? = event.fields["enhancement"], enhancement["fallback"] == .bool(true) {
                text += "  (enhancement fell back: \(enhancement["reason"]?.stringValue ?? "?"))"
            }
            return text
        case .retrying: return "\(status) \(event.error?.message ?? "")"
        case .completed:
            guard let result = event.result else { return status }
            let images = result.allImages
            return images.count == 1 ? "\(status) \(result.bytes) bytes, \(result.contentType)"
                                     : "\(status) \(images.count) images, \(images.map { "\($0.bytes)" }.joined(separator: " + ")) bytes"
        case .failed: return "\(status) \(event.error.map { "\($0.code): \($0.message)" } ?? "")"
        case .cancelled: return status
        }
    }
}

/// A redis-server the demo starts for itself: loopback, no persistence, in a temporary
/// folder, stopped and removed at the end.
final class ThrowawayRedis: @unchecked Sendable {
    // Safe to share: all fields are set once in init.
    let url: String
    private let pid: pid_t
    private let directory: String

    private init(url: String, pid: pid_t, directory: String) {
        self.url = url
        self.pid = pid
        self.directory = directory
    }

    static func start() async throws -> ThrowawayRedis {
        let candidates: [String] = ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"]
        guard let binary = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw CommandFailure(status: 1, message: "no Redis answers and redis-server is not installed (apt-get install redis-server)")
        }
        var template = Array("/tmp/imagequeue-demo-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw CommandFailure(status: 1, message: "cannot create a temporary folder") }
        let directory = String(cString: made)
        for _ in 0..<50 {
            let port = Int.random(in: 20000..<32000)
            let arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", directory, "--daemonize", "no", "--loglevel", "warning",
                             "--logfile", directory + "/redis.log"]
            guard let pid = try? spawnChild(binary, arguments) else { continue }
            let server = ThrowawayRedis(url: "redis://127.0.0.1:\(port)", pid: pid, directory: directory)
            for _ in 0..<100 {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { break }  // exited: port taken, try another
                var quick = try RedisConfiguration(url: server.url)
                quick.reconnectDeadline = Duration.milliseconds(50)
                let connection = RedisConnection(configuration: quick)
                if (try? await withRunning([connection]) { try await connection.send("PING") }) != nil { return server }
                try await Task.sleep(for: .milliseconds(30))
            }
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        throw CommandFailure(status: 1, message: "could not start redis-server (see \(directory)/redis.log)")
    }

    /// Stops the server and removes its folder.
    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        unlink(directory + "/redis.log")
        rmdir(directory)
    }
}
