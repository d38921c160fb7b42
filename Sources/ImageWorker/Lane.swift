import ImageQueue
import Synchronization

/// The jobs a model's loop runs now, each in its own task, with the number of free slots and
/// ways to wait for a free slot or for the last job to end.
final class Lane: Sendable {
    /// A running job: its task, and whether its lease was lost.
    final class Handle: Sendable {
        let job: ClaimedJob
        private let lost = Atomic<Bool>(false)
        private let task = Mutex<Task<Void, Never>?>(nil)

        init(job: ClaimedJob) { self.job = job }

        /// Whether another worker owns the job now.
        var leaseLost: Bool { lost.load(ordering: .acquiring) }

        func cancel() { task.withLock { $0 }?.cancel() }

        func loseLease() {
            lost.store(true, ordering: .releasing)
            cancel()
        }

        fileprivate func set(_ made: Task<Void, Never>) { task.withLock { $0 = made } }
    }

    private struct State {
        var running: [String: Handle] = [:]
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let slots: Int
    private let state = Mutex(State())

    init(slots: Int) { self.slots = slots }

    var running: Int { state.withLock { $0.running.count } }
    var free: Int { state.withLock { slots - $0.running.count } }
    var handles: [Handle] { state.withLock { Array($0.running.values) } }

    /// Whether the job's task has not ended yet.
    func isRunning(_ handle: Handle) -> Bool { state.withLock { $0.running[handle.job.id] === handle } }

    /// Runs a job in a task of its own; `body` gets a function telling whether the job's
    /// lease was lost (its task is then cancelled).
    func start(_ job: ClaimedJob, _ body: @escaping @Sendable (@escaping @Sendable () -> Bool) async -> JobProcessor.Outcome) {
        let handle = Handle(job: job)
        state.withLock { $0.running[job.id] = handle }
        handle.set(Task {
            _ = await body { handle.leaseLost }
            self.end(handle)
        })
    }

    private func end(_ handle: Handle) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.running[handle.job.id] = nil
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The number of free slots once there is one; 0 when the task is cancelled.
    func freeSlots() async -> Int {
        await wait { $0 < self.slots }
        return Task.isCancelled ? 0 : free
    }

    /// Returns when no job runs any more, even when the calling task is cancelled (cancel
    /// the jobs to hurry it).
    func drained() async {
        while running > 0 {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.running.isEmpty { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
    }

    /// Waits until `ready(running count)` holds, or the task is cancelled.
    private func wait(until ready: @escaping @Sendable (Int) -> Bool) async {
        while !Task.isCancelled, !ready(running) {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let now = state.withLock { state -> Bool in
                        if ready(state.running.count) || Task.isCancelled { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                    defer { state.waiters = [] }
                    return state.waiters
                }
                for waiter in waiters { waiter.resume() }
            }
        }
    }

    /// Stops every job (each is released to the head of its queue).
    func cancelAll() {
        for handle in handles { handle.cancel() }
    }
}
