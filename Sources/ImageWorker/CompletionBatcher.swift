import ImageQueue
import Synchronization

/// Sends the completions of jobs that end at about the same time in one `completeJob` call
/// per model. No timer and no task of its own: the first job of a model to finish sends its
/// completion at once; those that finish while that call is on its way wait, and the oldest
/// of them then sends them all in the next call (and so on). A worker running one job at a
/// time sends each completion from the job's own task, with no hand-off to another.
///
/// A claim loop whose slots are all busy leaves a claim request (`NextClaims`): the next call
/// of its model then completes and claims in one (`completeAndClaim`), and hands the jobs it
/// claimed to the loop, so a worker running one job at a time has one round trip per job.
///
/// The callers are jobs' last steps, which run shielded from cancellation (JobProcessor's
/// `finish`): a call once begun is answered, and a sender always hands on what waits.
final class CompletionBatcher: Sendable {
    private struct Completion {
        let job: ClaimedJob
        let result: JobResult
    }

    /// What a waiting completion is woken with: its outcome, or the turn to send the next call
    /// (its own completion first, then those waiting behind it).
    private enum Wake {
        case done(Result<Void, ImageQueueError>)
        case send
    }

    private struct Waiting {
        let completion: Completion
        let continuation: CheckedContinuation<Wake, Never>
    }

    private struct State {
        var waiting: [String: [Waiting]] = [:]
        /// Models with a call on its way (its sender hands on to the oldest waiting, if any).
        var sending: Set<String> = []
    }

    /// At most this many jobs per call.
    static let batchLimit = 500

    private let queue: WorkerQueue
    private let state = Mutex(State())

    /// The claims the next calls carry, per model.
    let nextClaims = NextClaims()

    init(queue: WorkerQueue) { self.queue = queue }

    /// Records the job's result (with others of its model, when some are waiting).
    /// - Throws: `ImageQueueError`, as `WorkerQueue.complete`.
    func complete(_ job: ClaimedJob, result: JobResult) async throws(ImageQueueError) {
        let model = job.model
        let mine = Completion(job: job, result: result)
        let sendsNow = state.withLock { $0.sending.insert(model).inserted }
        if !sendsNow {
            let wake = await withCheckedContinuation { continuation in
                // The call on its way may have ended meanwhile: then this one sends.
                let alone = state.withLock { state -> Bool in
                    if state.sending.insert(model).inserted { return true }
                    state.waiting[model, default: []].append(Waiting(completion: mine, continuation: continuation))
                    return false
                }
                if alone { continuation.resume(returning: .send) }
            }
            if case .done(let outcome) = wake { return try outcome.get() }
        }
        try await send(mine).get()
    }

    /// Sends `own` and what waits behind it (up to `batchLimit` in all) in one call, answers
    /// the others, and hands the turn to the oldest completion still waiting, if any.
    private func send(_ own: Completion) async -> Result<Void, ImageQueueError> {
        let model = own.job.model
        let others = state.withLock { state -> [Waiting] in
            let all = state.waiting[model] ?? []
            let batch = Array(all.prefix(Self.batchLimit - 1))
            state.waiting[model] = Array(all.dropFirst(batch.count))
            return batch
        }
        let completions = [own] + others.map(\.completion)
        let results = completions.map { (job: $0.job, result: $0.result) }
        let outcomes: Result<[Result<Void, ImageQueueError>], ImageQueueError>
        if let claim = nextClaims.takeRequest(model: model, atMost: completions.count) {
            let answer = await queue.complete(results, thenClaimUpTo: claim.count, lease: claim.lease)
            // The claimed jobs first: the loop starts them as the completed jobs' slots free up.
            nextClaims.deliver(model: model, answer.claimed)
            outcomes = answer.completions
        } else {
            do throws(ImageQueueError) {
                outcomes = .success(try await queue.complete(results))
            } catch {
                outcomes = .failure(error)
            }
        }
        let next = state.withLock { state -> Waiting? in
            guard var waiting = state.waiting[model], !waiting.isEmpty else {
                state.waiting[model] = nil
                state.sending.remove(model)
                return nil
            }
            let next = waiting.removeFirst()
            state.waiting[model] = waiting
            return next
        }
        next?.continuation.resume(returning: .send)
        switch outcomes {
        case .success(let each):
            for (waiting, outcome) in zip(others, each.dropFirst()) { waiting.continuation.resume(returning: .done(outcome)) }
            return each.first ?? .failure(ImageQueueError(.redis, "no answer for the completion"))
        case .failure(let error):
            for waiting in others { waiting.continuation.resume(returning: .done(.failure(error))) }
            return .failure(error)
        }
    }
}

/// The claim a loop with every slot busy asks the next completion call of its model to carry.
/// A request is taken by at most one call; the loop then waits for that call's answer
/// (`take`), which is the jobs it claimed, or nil: claim as usual.
final class NextClaims: Sendable {
    private enum Slot {
        case requested(count: Int, lease: Duration)
        case inFlight(waiter: CheckedContinuation<ClaimBatch?, Never>?)
        case delivered(ClaimBatch?)
    }

    private let slots = Mutex<[String: Slot]>([:])

    /// The loop of `model` would take up to `count` jobs once its busy slots free up.
    func request(model: String, count: Int, lease: Duration) {
        slots.withLock { $0[model] = .requested(count: count, lease: lease) }
    }

    /// For the sender: the request of `model`, if one waits, capped at `atMost` (the slots its
    /// call frees); it is the call's to answer with `deliver`.
    func takeRequest(model: String, atMost: Int) -> (count: Int, lease: Duration)? {
        slots.withLock { slots in
            guard case .requested(let count, let lease)? = slots[model] else { return nil }
            slots[model] = .inFlight(waiter: nil)
            return (min(count, atMost), lease)
        }
    }

    /// For the sender: what the call that took the request claimed (nil: not known).
    func deliver(model: String, _ batch: ClaimBatch?) {
        let waiter = slots.withLock { slots -> CheckedContinuation<ClaimBatch?, Never>? in
            guard case .inFlight(let waiter)? = slots[model] else { return nil }
            if waiter != nil {
                slots[model] = nil
            } else {
                slots[model] = .delivered(batch)
            }
            return waiter
        }
        waiter?.resume(returning: batch)
    }

    /// For the loop: withdraws its request, or, when a call has taken it, waits for that
    /// call's answer. nil: no call carried the claim (or its outcome is not known).
    func take(model: String) async -> ClaimBatch? {
        await withCheckedContinuation { continuation in
            let now = slots.withLock { slots -> ClaimBatch?? in
                switch slots[model] {
                case .inFlight(nil)?:
                    slots[model] = .inFlight(waiter: continuation)
                    return .none
                case .delivered(let batch)?:
                    slots[model] = nil
                    return .some(batch)
                default:
                    slots[model] = nil
                    return .some(nil)
                }
            }
            if let now { continuation.resume(returning: now) }
        }
    }
}
