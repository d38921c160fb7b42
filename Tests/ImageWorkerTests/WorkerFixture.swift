import CurlHTTP
import Foundation
import ImageQueue
import ImageQueueCommandLine
import ImageWorker
import Logging
import RedisClient
import ServiceLifecycle
import Synchronization
import TestSupport

/// One test's world: its own fake backends (a real HTTP server on loopback), its own key
/// prefix on the shared Redis, its own output folder, a producer, and a recorder of every
/// event published on any of the prefix's job channels. Workers run in-process in a
/// `ServiceGroup`, exactly as the CLI runs them.
final class WorkerFixture: Sendable {
    let fake: FakeBackends
    let redisConfiguration: RedisConfiguration
    let configuration: WorkerConfiguration
    let client: ImageQueueClient
    let redis: RedisConnection
    let events: EventRecorder
    let output: String

    var keys: QueueKeys { configuration.queue.keys }
    var inspector: QueueInspector { client.inspector }

    private init(fake: FakeBackends, redisConfiguration: RedisConfiguration, configuration: WorkerConfiguration,
                 events: EventRecorder) throws {
        self.fake = fake
        self.redisConfiguration = redisConfiguration
        self.configuration = configuration
        self.events = events
        output = configuration.outputDirectory
        client = try runInTest(ImageQueueClient(redis: redisConfiguration, configuration: configuration.queue, logger: testLogger))
        redis = runInTest(RedisConnection(configuration: redisConfiguration, logger: testLogger))
    }

    /// Starts the fake and builds the configuration: the fake's environment plus
    /// `environment`, then small test delays, then `configure`.
    /// `redisURL`: a server of the test's own; the shared test server when nil.
    static func make(fake given: FakeBackends? = nil, environment: [String: String] = [:], sdxlKey: String = "sdxl-test-key",
                     llm: String = "none", redisURL: String? = nil,
                     configure: (inout WorkerConfiguration) -> Void = { _ in }) async throws -> WorkerFixture {
        let fake = if let given { given } else { try await FakeBackends.start() }
        var values = fake.environment(sdxlKey: sdxlKey, llm: llm)
        for (key, value) in environment { values[key] = value }
        var configuration = try WorkerConfiguration.load(environment: values)
        let prefix = TestEnvironment.uniquePrefix("iw")
        configuration.queue.keyPrefix = prefix
        configuration.queue.rateLimit = nil
        configuration.outputDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-worker-\(prefix)").path
        // Long enough that a test process stalled on a loaded machine keeps its jobs: with a
        // 3 s lease such a stall let the recovery sweep run a job twice (two backend calls).
        // No test here waits for a lease to expire.
        configuration.lease = .seconds(30)
        configuration.grace = .seconds(2)
        configuration.retryBaseDelay = .milliseconds(50)
        configuration.retryMaxDelay = .milliseconds(200)
        configuration.connectTimeout = .seconds(2)
        configure(&configuration)
        // The first call starts the shared redis-server and waits for it: off the pool.
        let url: String
        if let redisURL { url = redisURL } else { url = try await offPool { try TestEnvironment.redisURL() } }
        let redisConfiguration = try RedisConfiguration(url: url)
        let events = try await EventRecorder.start(redis: redisConfiguration, keys: configuration.queue.keys)
        return try WorkerFixture(fake: fake, redisConfiguration: redisConfiguration, configuration: configuration, events: events)
    }

    /// Builds a worker and runs its services in a `ServiceGroup` on a task of its own.
    func startWorker(id: String = "w1", models: [String] = ["flux", "sdxl"], slotsPerModel: Int = 1,
                     logger: Logger = testLogger) throws -> RunningWorker {
        let worker = try ImageWorker(configuration: configuration, redis: redisConfiguration, models: models, workerID: id,
                                     slotsPerModel: slotsPerModel, logger: logger)
        let group = ServiceGroup(configuration: .init(services: worker.services, logger: logger))
        let task = Task { try await group.run() }
        return RunningWorker(worker: worker, group: group, task: task)
    }

    /// Runs `body` while workers run; shuts them down gracefully afterwards, also when
    /// `body` throws.
    func withWorkers<T>(_ ids: [String] = ["w1"], models: [String] = ["flux", "sdxl"], logger: Logger = testLogger,
                        _ body: ([RunningWorker]) async throws -> T) async throws -> T {
        var started: [RunningWorker] = []
        do {
            for id in ids { started.append(try startWorker(id: id, models: models, logger: logger)) }
            let result = try await body(started)
            for worker in started { try await worker.stop() }
            return result
        } catch {
            for worker in started { try? await worker.stop() }
            throw error
        }
    }

    /// Enqueues one job.
    func enqueue(_ prompt: String, model: String = "flux", enhance: Bool = true) async throws -> String {
        try await client.enqueue(JobRequest(model: model, prompt: prompt, user: "tester", enhance: enhance)).id
    }

    /// Waits for the job's terminal event, then returns its stored state.
    func waitForEnd(_ id: String, timeout: Duration = .seconds(30)) async throws -> JobInfo {
        _ = try await events.waitForTerminal(of: id, timeout: timeout)
        return try await inspector.status(id)
    }

    /// The requests a fake service received, decoded.
    func requests(_ service: String) async throws -> [FakeRequest] {
        try await fake.requests(service).map(FakeRequest.init)
    }

    /// The canned image the fake serves for a model by default, fetched by the test itself
    /// (the fake's request log is cleared afterwards).
    func cannedImage(_ model: String) async throws -> [UInt8] {
        let http = HTTPClient()
        var request = model == "flux"
            ? HTTPRequest(method: "GET", url: fake.fluxURL + "?prompt=reference")
            : HTTPRequest(method: "POST", url: fake.sdxlURL, headers: [("Content-Type", "application/json")],
                          body: Array(#"{"prompt":"reference"}"#.utf8))
        request.timeout = .seconds(10)
        let response = try await http.send(request)
        guard response.status == 200 else { throw TestSetupError("the fake's \(model) answered \(response.status)") }
        try await fake.reset()
        return response.body
    }

    /// The job's hash as stored (HGETALL).
    func jobHash(_ id: String) async throws -> [String: String] {
        let reply = try await redis.send("HGETALL", keys.job(try JobID(id)))
        let items = reply.array ?? []
        var hash: [String: String] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            hash[items[index].string ?? ""] = items[index + 1].string ?? ""
        }
        return hash
    }

    func close() {
        events.close()
        client.close()
        redis.close()
        try? FileManager.default.removeItem(atPath: output)
    }
}

/// A worker running in this process.
final class RunningWorker: Sendable {
    let worker: ImageWorker
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(worker: ImageWorker, group: ServiceGroup, task: Task<Void, any Error>) {
        self.worker = worker
        self.group = group
        self.task = task
    }

    /// Graceful shutdown, as SIGTERM would do; rethrows what the group ended with.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// A request as the fake logged it.
struct FakeRequest: Sendable {
    var service: String
    var method: String
    var path: String
    var query: String
    var prompt: String?
    var headers: [String: String]
    var body: String
    var timeMilliseconds: Int64
    var endMilliseconds: Int64?
    /// `ok`, `dropped` or `client_closed` (the worker went away mid-answer).
    var outcome: String?

    init(_ entry: [String: Any]) {
        service = entry["service"] as? String ?? ""
        method = entry["method"] as? String ?? ""
        path = entry["path"] as? String ?? ""
        query = entry["query"] as? String ?? ""
        prompt = entry["prompt"] as? String
        headers = entry["headers"] as? [String: String] ?? [:]
        body = entry["body"] as? String ?? ""
        timeMilliseconds = Self.number(entry["time_ms"]) ?? 0
        endMilliseconds = Self.number(entry["end_ms"])
        outcome = entry["outcome"] as? String
    }

    private static func number(_ value: Any?) -> Int64? {
        switch value {
        case let value as Int: Int64(value)
        case let value as Int64: value
        case let value as Double: Int64(value)
        case let value as NSNumber: value.int64Value
        default: nil
        }
    }
}

/// Every event published on the job channels of one key prefix, subscribed before any job
/// exists, so no event is missed.
final class EventRecorder: Sendable {
    struct Published: Sendable {
        var channel: String
        var json: String
        var event: StatusEvent?
    }

    private let subscriber: RedisSubscriber
    private let keys: QueueKeys
    private let box: PublishedBox
    private let listening: Task<Void, Never>

    private init(subscriber: RedisSubscriber, keys: QueueKeys, box: PublishedBox, listening: Task<Void, Never>) {
        self.subscriber = subscriber
        self.keys = keys
        self.box = box
        self.listening = listening
    }

    static func start(redis: RedisConfiguration, keys: QueueKeys) async throws -> EventRecorder {
        let subscriber = runInTest(RedisSubscriber(configuration: redis, logger: testLogger))
        let stream = try await subscriber.subscribe(["\(keys.prefix):{*}:events:*"], patterns: true)
        let box = PublishedBox()
        let listening = Task {
            for await message in stream {
                if case .message(let channel, let payload) = message {
                    box.append(Published(channel: channel, json: String(decoding: payload, as: UTF8.self),
                                         event: try? StatusEvent(json: payload)))
                }
            }
        }
        return EventRecorder(subscriber: subscriber, keys: keys, box: box, listening: listening)
    }

    /// Everything published on the job's own channel, in order.
    func published(for id: String) -> [Published] {
        guard let jobID = try? JobID(id) else { return [] }
        let channel = keys.events(jobID)
        return box.all.filter { $0.channel == channel }
    }

    /// The job's events, in revision order.
    func events(of id: String) -> [StatusEvent] {
        published(for: id).compactMap(\.event).sorted { $0.revision < $1.revision }
    }

    /// Waits until the job's terminal event has been received; returns all its events.
    func waitForTerminal(of id: String, timeout: Duration) async throws -> [StatusEvent] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let events = events(of: id)
            if events.contains(where: \.status.isTerminal) { return events }
            if ContinuousClock.now > deadline {
                throw TestSetupError("job \(id) did not end within \(timeout); events so far: \(events.map(\.status))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func close() {
        listening.cancel()
        subscriber.close()
    }
}

/// The recorder's list, shared with its listening task.
final class PublishedBox: Sendable {
    private let items = Mutex<[EventRecorder.Published]>([])
    func append(_ item: EventRecorder.Published) { items.withLock { $0.append(item) } }
    var all: [EventRecorder.Published] { items.withLock { $0 } }
}

/// Quiet unless IMAGEQUEUE_TEST_LOG is set (then everything goes to stderr).
let testLogger: Logger = {
    if ProcessInfo.processInfo.environment["IMAGEQUEUE_TEST_LOG"] != nil {
        var logger = Logger(label: "imageworker.tests", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .debug
        return logger
    }
    return Logger(label: "imageworker.tests", factory: { _ in SwiftLogNoOpLogHandler() })
}()

