import ServiceLifecycle
import Synchronization

/// Runs `services` while `body` runs, then cancels them and waits for them to end: the
/// one-shot path (a CLI command, a probe, a test) to a client that lives inside a `run()`.
///
/// ```swift
/// let redis = makeRedisClient(configuration: configuration)
/// let reply = try await withRunning([redis]) { try await redis.send("PING") }
/// ```
/// A long-lived process puts its clients in a `ServiceGroup` instead, or wraps the group's
/// `run()` in this so that they outlive every other service's graceful shutdown.
/// - Throws: what `body` throws, else the first error a service's `run()` threw.
public func withRunning<Result>(_ services: [any Service], isolation: isolated (any Actor)? = #isolation,
                                _ body: () async throws -> Result) async throws -> Result {
    try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
        for service in services { group.addTask { try await service.run() } }
        let result: Swift.Result<Result, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        group.cancelAll()
        try await group.waitForAll()
        return try result.get()
    }
}

/// A service that can also be told to stop from outside its task: its `close()` ends `run()`
/// and fails whatever still waits for it. Every Redis client of ImageQueue is one.
public protocol ClosableService: Service {
    /// Ends `run()`; calls queued and made later fail.
    func close()
}

/// Clients made on demand (a cluster's node connections, a worker's blocking connections),
/// each run as a child task of the owner's `run()`. One made before `run()` starts waits for
/// it; once `run()` has ended every client is closed, and one handed over later is closed at
/// once, so their commands fail `.closed` instead of waiting.
package final class ChildClients: Service {
    private let stream: AsyncStream<any ClosableService>
    private let continuation: AsyncStream<any ClosableService>.Continuation
    private let handedOver = Mutex<(clients: [any ClosableService], ended: Bool)>(([], false))

    package init() {
        (stream, continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    /// Hands `client` to `run()`.
    package func start(_ client: any ClosableService) {
        let ended = handedOver.withLock { state in
            if !state.ended { state.clients.append(client) }
            return state.ended
        }
        if ended { client.close() } else { continuation.yield(client) }
    }

    /// Runs every client handed over until cancelled or `finish()`ed, then closes them all.
    /// Call it once.
    package func run() async {
        await withDiscardingTaskGroup { group in
            for await client in stream {
                group.addTask { try? await client.run() }
            }
            group.cancelAll()
        }
        finish()
    }

    /// Ends `run()` and closes every client, those handed over later too.
    package func finish() {
        let clients = handedOver.withLock { state in
            state.ended = true
            defer { state.clients = [] }
            return state.clients
        }
        continuation.finish()
        for client in clients { client.close() }
    }
}

/// A process's clients as one entry of a `ServiceGroup`, listed before the services that use
/// them: the group shuts its services down in reverse order, so the clients end on graceful
/// shutdown only once every later service has finished (and on cancellation).
public struct ClientsService: Service {
    private let clients: [any Service]

    public init(_ clients: [any Service]) { self.clients = clients }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                for client in clients { group.addTask { try await client.run() } }
            }
        }
    }
}
