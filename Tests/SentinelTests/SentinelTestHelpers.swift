import Foundation
import RedisClient
import Synchronization
import Testing
import TestSupport

/// A connection to `url` run in the test's scope, optionally adjusted.
func connection(to url: String, _ adjust: (inout RedisConfiguration) -> Void = { _ in }) throws -> RedisConnection {
    var configuration = try RedisConfiguration(url: url)
    adjust(&configuration)
    return runInTest(RedisConnection(configuration: configuration))
}

/// A subscriber to `url` run in the test's scope, optionally adjusted.
func subscriber(to url: String, _ adjust: (inout RedisConfiguration) -> Void = { _ in }) throws -> RedisSubscriber {
    var configuration = try RedisConfiguration(url: url)
    adjust(&configuration)
    return runInTest(RedisSubscriber(configuration: configuration))
}

/// The port of the server `connection` reached (`tcp_port` of `INFO server`).
func reachedPort(_ connection: RedisConnection) async throws -> Int? {
    let text = try await connection.send("INFO", "server").string ?? ""
    for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("tcp_port:") {
        return Int(line.dropFirst("tcp_port:".count))
    }
    return nil
}

/// One field of `INFO <section>` on the data server on `port`, asked directly.
func infoField(_ field: String, section: String, port: Int, on deployment: LocalSentinel) async throws -> String? {
    let text = try await deployment.node(port, ["INFO", section]).string ?? ""
    for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix(field + ":") {
        return String(line.dropFirst(field.count + 1))
    }
    return nil
}

/// Text as a bulk reply.
func bulk(_ text: String) -> RESPValue { .bulk(Array(text.utf8)) }

/// A value set once by another task, read by the test while it polls.
final class Outcome<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    func set(_ newValue: Value) { value.withLock { $0 = newValue } }
    var current: Value? { value.withLock { $0 } }
}

/// Events appended by one task and read by another.
final class EventLog: Sendable {
    private let events = Mutex<[SubscriptionEvent]>([])
    func append(_ event: SubscriptionEvent) { events.withLock { $0.append(event) } }
    var all: [SubscriptionEvent] { events.withLock { $0 } }
}

/// Reads a subscription stream on its own task, recording every event.
final class StreamReader: Sendable {
    private let log = EventLog()
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ stream: AsyncStream<SubscriptionEvent>) {
        let started = Task { [log] in
            for await event in stream { log.append(event) }
        }
        task.withLock { $0 = started }
    }

    var all: [SubscriptionEvent] { log.all }

    /// The payloads received on `channel`, as text.
    func payloads(on channel: String) -> [String] {
        all.compactMap { event in
            if case .message(channel, let payload) = event { return String(decoding: payload, as: UTF8.self) }
            return nil
        }
    }

    /// Ends the iteration and waits for the reading task.
    func stop() async {
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
    }
}
