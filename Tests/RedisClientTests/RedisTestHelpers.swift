import RedisClient
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport

/// A connection to the shared test Redis, optionally adjusted.
func sharedConnection(clientName: String? = nil,
                      _ adjust: (inout RedisConfiguration) -> Void = { _ in }) throws -> RedisConnection {
    try connection(to: TestEnvironment.redisURL(), clientName: clientName, adjust)
}

/// A connection to `url`, optionally adjusted.
func connection(to url: String, clientName: String? = nil,
                _ adjust: (inout RedisConfiguration) -> Void = { _ in }) throws -> RedisConnection {
    var configuration = try RedisConfiguration(url: url, clientName: clientName)
    adjust(&configuration)
    return runInTest(RedisConnection(configuration: configuration))
}

/// One field of `INFO <section>`, e.g. `blocked_clients`.
func infoField(_ field: String, section: String, on connection: RedisConnection) async throws -> String? {
    let text = try await connection.send("INFO", section).string ?? ""
    for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix(field + ":") {
        return String(line.dropFirst(field.count + 1))
    }
    return nil
}

/// The last command (`cmd=` of `CLIENT LIST`) of the client named `name`, or nil when no
/// client has that name.
func lastCommand(ofClientNamed name: String, on connection: RedisConnection) async throws -> String? {
    let text = try await connection.send("CLIENT", "LIST").string ?? ""
    for line in text.split(whereSeparator: \.isNewline) {
        let fields = line.split(separator: " ")
        guard fields.contains(Substring("name=\(name)")) else { continue }
        return fields.first { $0.hasPrefix("cmd=") }.map { String($0.dropFirst(4)) }
    }
    return nil
}

/// How many clients with this name are blocked (flag `b`) in Redis now.
func blockedClients(named name: String, on connection: RedisConnection) async throws -> Int {
    let text = try await connection.send("CLIENT", "LIST").string ?? ""
    return text.split(whereSeparator: \.isNewline).filter { line in
        let fields = line.split(separator: " ")
        return fields.contains(Substring("name=\(name)")) && fields.contains { $0.hasPrefix("flags=") && $0.contains("b") }
    }.count
}

/// Text as a bulk reply.
func bulk(_ text: String) -> RESPValue { .bulk(Array(text.utf8)) }

/// An ordered record of what happened, shared between tasks.
final class EventRecorder<Event: Sendable>: Sendable {
    private let events = Mutex<[Event]>([])

    func record(_ event: Event) { events.withLock { $0.append(event) } }

    var all: [Event] { events.withLock { $0 } }
}

/// Reads a subscription stream on its own task, recording every event; cancelling the
/// reader ends the iteration (and so the listener).
final class StreamReader: Sendable {
    let recorder = EventRecorder<SubscriptionEvent>()
    private let finished = Mutex(false)
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ stream: AsyncStream<SubscriptionEvent>) {
        let started = Task { [self] in
            for await event in stream { recorder.record(event) }
            finished.withLock { $0 = true }
        }
        task.withLock { $0 = started }
    }

    /// Whether the stream has finished (or the reader was stopped).
    var isFinished: Bool { finished.withLock { $0 } }

    /// The payloads received on `channel`, as text.
    func payloads(on channel: String) -> [String] {
        recorder.all.compactMap { event in
            if case .message(channel, let payload) = event { return String(decoding: payload, as: UTF8.self) }
            return nil
        }
    }

    /// Waits until `text` has been received on `channel`; false if it did not arrive.
    func waitFor(_ text: String, on channel: String, within limit: Duration = .seconds(60)) async -> Bool {
        await eventually(within: limit) { payloads(on: channel).contains(text) }
    }

    /// Ends the iteration and waits for the reading task to return.
    func stop() async {
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
    }
}

// MARK: - Private servers

/// Starts a private redis-server off the cooperative pool.
func privateRedisServer(_ extraArguments: [String] = []) async throws -> RedisServer {
    try await RedisServer.launch(extraArguments: extraArguments)
}
