import ImageQueue
import Synchronization

/// The jobs a model's loop runs now, each as a child task of the loop's task group, with the
/// number of free slots and ways to wait for a free slot or for the last job to end.
final class Lane: Sendable {
    /// Why a running job was stopped before its end.
    enum StopReason: UInt8, Sendable {
        /// Another worker owns it now: abandon it quietly.
        case leaseLost = 1
        /// It was cancelled (`imagequeue cancel`, DELETE /v1/jobs/{id}): it has already ended
        /// `cancelled` in Redis; stop its backend call and record nothing.
        case cancelled = 2
    }

    /// A running job: why it was stopped, if it was, and the request to stop it.
    final class Handle: @unchecked Sendable {
        // Safe to share: `task` is read and written only under `stop`'s lock.
        let job: ClaimedJob
        private let reason = Atomic<UInt8>(0)
        /// Whether the job is to stop, and its task while it runs (nil before and after).
        private let stop = Mutex<Bool>(false)
        private var task: UnsafeCurrentTask?

        init(job: ClaimedJob) { self.job = job }

        /// Why the job was stopped; nil while it was not (a shutdown cancels it without a reason).
        var stopReason: StopReason? { StopReason(rawValue: reason.load(ordering: .acquiring)) }

        /// Cancels the job's task (the job then releases itself). The task's cancellation
        /// handlers run inside this call, under the lock: none of them may call back into the
        /// handle (they cancel Redis calls and HTTP transfers, which do not).
        func cancel() {
            stop.withLock { requested in
                requested = true
                task?.cancel()
            }
        }

        /// Cancels the job's task for `why` (the first reason given wins).
        func stop(_ why: StopReason) {
            _ = reason.compareExchange(expected: 0, desired: why.rawValue, ordering: .acquiringAndReleasing)
            cancel()
        }

        /// Runs `body` in the calling task, cancelled by `cancel()` (before or while it runs).
        /// The task is held only while `body` runs, under the lock `cancel()` takes, so a
        /// cancel never reaches a task that has ended.
        fileprivate func run(_ body: () async -> Void) async {
            withUnsafeCurrentTask { current in
                stop.withLock { requested in
                    task = current
                    if requested { current?.cancel() }
                }
            }
            await body()
            stop.withLock { _ in task = nil }
        }
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
    /// The running job with this id.
    func handle(_ id: String) -> Handle? { state.withLock { $0.running[id] } }

    /// Whether the job has not ended yet.
    func isRunning(_ handle: Handle) -> Bool { state.withLock { $0.running[handle.job.id] === handle } }

    /// Runs a job as a child of `group`; `body` gets a function telling why the job was
    /// stopped (its task is then cancelled: `Handle.cancel()` cancels that one child).
    func start(_ job: ClaimedJob, in group: inout DiscardingTaskGroup,
               _ body: @escaping @Sendable (@escaping @Sendable () -> StopReason?) async -> JobProcessor.Outcome) {
        let handle = Handle(job: job)
        state.withLock { $0.running[job.id] = handle }
        group.addTask {
            await handle.run { _ = await body { handle.stopReason } }
            self.end(handle)
        }
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

    /// Returns once `count` slots are free (at most every slot), or the task is cancelled.
    func freeSlots(atLeast count: Int) async {
        let wanted = min(count, slots)
        await wait { self.slots - $0 >= wanted }
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
