import Synchronization

/// The ids of the jobs this worker runs now (for the registry), with a way to wait for
/// the set to change so the registry can be refreshed at once.
final class CurrentJobs: Sendable {
    private struct State {
        var ids: Set<String> = []
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    func add(_ id: String) { change { _ = $0.insert(id) } }
    func remove(_ id: String) { change { _ = $0.remove(id) } }
    var all: [String] { state.withLock { Array($0.ids).sorted() } }

    private func change(_ body: (inout Set<String>) -> Void) {
        let waiters = state.withLock { state in
            body(&state.ids)
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns at the next change, after `timeout`, or when the task is cancelled.
    func waitForChange(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            group.addTask { await self.nextChange() }
            await group.next()
            group.cancelAll()
        }
    }

    private func nextChange() async {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let cancelled = state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if cancelled { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
