import ImageQueue
import RedisClient
import Synchronization

/// The ids of the latest completed jobs, followed from every model's event channel (for
/// the dashboard; the server keeps them in memory only).
final class RecentCompletions: Sendable {
    private let ids = Mutex<[String]>([])
    let capacity = 24

    /// Newest first.
    var latest: [String] { ids.withLock { $0 } }

    func record(_ id: String) {
        ids.withLock { ids in
            ids.removeAll { $0 == id }
            ids.insert(id, at: 0)
            if ids.count > capacity { ids.removeLast(ids.count - capacity) }
        }
    }

    /// Records completions until cancelled, resubscribing if Redis goes away for long.
    func follow(subscriber: RedisSubscriber, pattern: String) async {
        while !Task.isCancelled {
            do {
                for await message in try await subscriber.subscribe([pattern], patterns: true) {
                    if case .message(_, let payload) = message, let event = try? StatusEvent(json: payload),
                       event.status == .completed {
                        record(event.id)
                    }
                }
            } catch {
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
