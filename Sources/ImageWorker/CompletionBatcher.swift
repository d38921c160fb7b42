import ImageQueue
import Synchronization

/// Sends the completions of jobs that end at about the same time in one `completeJob` call
/// per model. No timer: while one call is on its way, the completions that arrive meanwhile
/// wait for it and then go together in the next. A worker running one job at a time sends
/// each completion at once, as before.
///
/// The calls go out from `run()`, which the claim loops run beside their jobs and end with
/// `finish()` once no job runs any more.
final class CompletionBatcher: Sendable {
    private struct Waiting {
        let job: ClaimedJob
        let result: JobResult
        /// Answered with the call's outcome for the job; nil when it was not taken (no sender).
        let continuation: CheckedContinuation<Result<Void, ImageQueueError>?, Never>
    }

    private struct State {
        var waiting: [String: [Waiting]] = [:]
        /// Models whose completions are being sent, or are about to be.
        var sending: Set<String> = []
        /// Models with completions and no call on its way yet, for `run()`, oldest first.
        var ready: [String] = []
        /// `run()` waiting for a ready model.
        var wake: CheckedContinuation<Void, Never>?
        /// `finish()` was called: `run()` ends once every call is answered.
        var finished = false
    }

    /// At most this many jobs per call.
    static let batchLimit = 500

    private let queue: WorkerQueue
    private let state = Mutex(State())

    init(queue: WorkerQueue) { self.queue = queue }

    /// Records the job's result (with others of its model, when some are waiting).
    /// - Throws: `ImageQueueError`, as `WorkerQueue.complete`.
    func complete(_ job: ClaimedJob, result: JobResult) async throws(ImageQueueError) {
        let outcome = await withCheckedContinuation { continuation in
            let (accepted, wake) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
                if state.finished { return (false, nil) }
                state.waiting[job.model, default: []].append(Waiting(job: job, result: result, continuation: continuation))
                guard state.sending.insert(job.model).inserted else { return (true, nil) }
                state.ready.append(job.model)
                defer { state.wake = nil }
                return (true, state.wake)
            }
            wake?.resume()
            if !accepted { continuation.resume(returning: nil) }
        }
        guard let outcome else {
            // No sender any more (`finish()` was called): the completion goes alone.
            try await queue.complete(job, result: result)
            return
        }
        try outcome.get()
    }

    /// Sends the calls, a model's one after the other and models side by side, until
    /// `finish()` is called and every call is answered. Not stopped by cancellation: a job
    /// waiting for its completion must get an answer (the owner runs it shielded).
    func run() async {
        await withDiscardingTaskGroup { group in
            while let model = await nextModel() {
                group.addTask { await self.send(model: model) }
            }
        }
    }

    /// Ends `run()` once the calls on their way are answered; completions after this go
    /// alone, each in its caller.
    func finish() {
        let wake = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.wake = nil }
            return state.wake
        }
        wake?.resume()
    }

    /// The next model with completions to send; nil after `finish()`.
    private func nextModel() async -> String? {
        while true {
            let next = state.withLock { state -> String?? in
                if !state.ready.isEmpty { return .some(state.ready.removeFirst()) }
                return state.finished ? .some(nil) : nil
            }
            if let next { return next }
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if !state.ready.isEmpty || state.finished { return true }
                    state.wake = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        }
    }

    /// Sends what waits for `model`, call after call, until nothing does.
    private func send(model: String) async {
        while true {
            let batch = state.withLock { state -> [Waiting] in
                let all = state.waiting[model] ?? []
                let batch = Array(all.prefix(Self.batchLimit))
                state.waiting[model] = Array(all.dropFirst(batch.count))
                if batch.isEmpty { state.sending.remove(model) }
                return batch
            }
            if batch.isEmpty { return }
            do {
                let outcomes = try await queue.complete(batch.map { (job: $0.job, result: $0.result) })
                for (waiting, outcome) in zip(batch, outcomes) { waiting.continuation.resume(returning: outcome) }
            } catch {
                for waiting in batch { waiting.continuation.resume(returning: .failure(error)) }
            }
        }
    }
}
