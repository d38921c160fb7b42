import ImageQueue
import Logging
import RedisClient
import Synchronization

/// Tells waiting deliveries when their model's queue has moved (a job was claimed,
/// cancelled or requeued), so a status message can show a fresh position without polling.
/// One subscription to every model's event channel serves all deliveries.
final class QueueMovement: Sendable {
    private let listeners = Mutex<[String: [UInt64: AsyncStream<Void>.Continuation]]>([:])
    private let nextID = Atomic<UInt64>(0)

    /// A stream that yields (coalesced) whenever `model`'s queue moves. Ending the
    /// iteration stops it.
    func changes(of model: String) -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = nextID.add(1, ordering: .relaxed).newValue
        listeners.withLock { $0[model, default: [:]][id] = continuation }
        continuation.onTermination = { [weak self] _ in
            self?.listeners.withLock { _ = $0[model]?.removeValue(forKey: id) }
        }
        return stream
    }

    /// Follows the models' event channels until cancelled.
    func run(subscriber: RedisSubscriber, keys: QueueKeys, models: [String], logger: Logger) async {
        var channels: [String: String] = [:]
        for model in models { channels[keys.events(model)] = model }
        while !Task.isCancelled {
            do {
                let messages = try await subscriber.subscribe(Array(channels.keys))
                for await message in messages {
                    switch message {
                    case .message(let channel, _):
                        if let model = channels[channel] { signal(model) }
                    case .resubscribed:
                        for model in models { signal(model) }
                    }
                }
            } catch {
                logger.warning("cannot follow the queues' events; positions may lag", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func signal(_ model: String) {
        for continuation in listeners.withLock({ Array(($0[model] ?? [:]).values) }) { continuation.yield() }
    }
}
