import ImageQueue
import Synchronization

/// Sends the completions of jobs that end at about the same time in one `completeJob` call
/// per model. No timer: while one call is on its way, the completions that arrive meanwhile
/// wait for it and then go together in the next. A worker running one job at a time sends
/// each completion at once, as before.
final class CompletionBatcher: Sendable {
    private struct Waiting {
        let job: ClaimedJob
        let result: JobResult
        let continuation: CheckedContinuation<Result<Void, ImageQueueError>, Never>
    }

    private struct State {
        var waiting: [String: [Waiting]] = [:]
        var sending: Set<String> = []
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
            let startSending = state.withLock { state -> Bool in
                state.waiting[job.model, default: []].append(Waiting(job: job, result: result, continuation: continuation))
                return state.sending.insert(job.model).inserted
            }
            if startSending { Task { await self.send(model: job.model) } }
        }
        try outcome.get()
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
