import ImageQueue
import Synchronization

/// Sends the completions of jobs that end at about the same time in one `completeJob` call
/// per model. No timer: while one call is on its way, the completions that arrive meanwhile
/// wait for it and then go together in the next. A worker running one job at a time sends
/// each completion at once, as before.
///
/// A claim loop whose slots are all busy leaves a claim request (`NextClaims`): the next call
/// of its model then completes and claims in one (`completeAndClaim`), and hands the jobs it
/// claimed to the loop, so a worker running one job at a time has one round trip per job.
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

    /// The claims the next calls carry, per model.
    let nextClaims = NextClaims()

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
            let results = batch.map { (job: $0.job, result: $0.result) }
            if let claim = nextClaims.takeRequest(model: model, atMost: batch.count) {
                let answer = await queue.complete(results, thenClaimUpTo: claim.count, lease: claim.lease)
                // The claimed jobs first: the loop starts them as the completed jobs' slots free up.
                nextClaims.deliver(model: model, answer.claimed)
                switch answer.completions {
                case .success(let outcomes):
                    for (waiting, outcome) in zip(batch, outcomes) { waiting.continuation.resume(returning: outcome) }
                case .failure(let error):
                    for waiting in batch { waiting.continuation.resume(returning: .failure(error)) }
                }
                continue
            }
            do {
                let outcomes = try await queue.complete(results)
                for (waiting, outcome) in zip(batch, outcomes) { waiting.continuation.resume(returning: outcome) }
            } catch {
                for waiting in batch { waiting.continuation.resume(returning: .failure(error)) }
            }
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
