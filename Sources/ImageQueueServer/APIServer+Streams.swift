import Hummingbird
import Synchronization
import ImageQueue
import RedisClient

extension APIServer {
    func addStreamRoutes(to router: RouterGroup<BasicRequestContext>) {
        // One job: its current state first, then each change; ends after a terminal status.
        // ImageQueueClient.watch re-reads the stored state after a Redis reconnect, so the
        // terminal event is never lost.
        router.get("/v1/jobs/:id/events") { request, context -> Response in
            let id = try context.parameters.require("id")
            _ = try await queueCall { try await client.inspector.status(id) }  // 404 before the stream starts
            let queue = client
            return eventStream { emit in
                for try await event in queue.watch(id) { emit(Self.frame(event.json, revision: event.revision)) }
            }
        }

        // Every job of every model, for dashboards; never ends on its own.
        router.get("/v1/events") { request, _ -> Response in
            let subscriber = subscriber
            let pattern = client.configuration.keys.allEventsPattern
            let messages: AsyncStream<SubscriptionEvent>
            do {
                messages = try await subscriber.subscribe([pattern], patterns: true)
            } catch {
                throw APIError(.serviceUnavailable, "redis_unavailable", "Redis is not available right now")
            }
            return eventStream { emit in
                for await message in messages {
                    switch message {
                    case .message(_, let payload):
                        // No `id:` here: revisions are per job, so they mean nothing as a
                        // position in this stream of every job.
                        emit(Self.frame(String(decoding: payload, as: UTF8.self), revision: nil))
                    case .resubscribed:
                        // Events may have been missed while Redis was away: tell the page to re-read.
                        emit("event: resync\ndata: {}\n\n")
                    }
                }
            }
        }
    }

    /// A `text/event-stream` response: frames from `produce`, interleaved with a keep-alive
    /// comment; it ends when `produce` returns or the client goes away.
    func eventStream(_ produce: @escaping @Sendable (_ emit: @Sendable (String) -> Void) async throws -> Void) -> Response {
        let keepAlive = configuration.keepAlive
        let logger = logger
        let streams = streams
        let body = ResponseBody { writer in
            let (frames, continuation) = AsyncStream<String>.makeStream()
            let registration = streams.add(continuation)
            defer { streams.remove(registration) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await produce { continuation.yield($0) }
                    } catch {
                        logger.debug("event stream source ended", metadata: ["error": "\(error)"])
                    }
                    continuation.finish()
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: keepAlive)
                        continuation.yield(": keep-alive\n\n")
                    }
                }
                try await writer.write(ByteBuffer(string: ": stream open\n\n"))
                for await frame in frames {
                    try await writer.write(ByteBuffer(string: frame))
                }
                group.cancelAll()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok,
                        headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "keep-alive"],
                        body: body)
    }

    /// One SSE frame carrying a status event.
    static func frame(_ json: String, revision: Int64?) -> String {
        (revision.map { "id: \($0)\n" } ?? "") + "event: status\ndata: \(json)\n\n"
    }
}

/// The event streams open now, so a graceful shutdown can end them.
final class OpenStreams: Sendable {
    private let state = Mutex<(next: Int, open: [Int: AsyncStream<String>.Continuation], closed: Bool)>((0, [:], false))

    /// Registers a stream; one registered after shutdown began is ended at once.
    func add(_ continuation: AsyncStream<String>.Continuation) -> Int {
        let (id, closed) = state.withLock { state in
            state.next += 1
            state.open[state.next] = continuation
            return (state.next, state.closed)
        }
        if closed { continuation.finish() }
        return id
    }

    func remove(_ id: Int) {
        _ = state.withLock { $0.open.removeValue(forKey: id) }
    }

    /// Ends every open stream (their clients see the response finish).
    func closeAll() {
        let open = state.withLock { state in
            state.closed = true
            return Array(state.open.values)
        }
        for continuation in open { continuation.finish() }
    }
}
