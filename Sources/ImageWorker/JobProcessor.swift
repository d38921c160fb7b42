import ImageQueue
import Logging
import Synchronization

/// Runs one claimed job to its end: enhance, generate (retrying transient failures inside
/// the lease), store, complete (its lease is kept alive by the claim loop). A stale-token answer
/// (another worker took the job over) abandons the job quietly.
struct JobProcessor: Sendable {
    let queue: WorkerQueue
    let enhancer: any PromptEnhancer
    let generator: any ImageGenerator
    let store: any ResultStore
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let logger: Logger
    /// Completions of jobs that end at about the same time go to Redis in one call.
    let completions: CompletionBatcher

    /// How the job ended, from this worker's point of view.
    enum Outcome: Equatable {
        case completed, failed, requeued, released, abandoned, cancelled
    }

    private struct LeaseLost: Error {}
    private struct JobCancelled: Error {}

    /// Processes the job; when the calling task is cancelled (shutdown past the grace
    /// period) the job is released to the head of its queue. Its lease is kept alive by the
    /// claim loop, which cancels the task when the lease is lost or the job was cancelled
    /// (`stopReason` then says which: the job is abandoned, or ends there, `cancelled`).
    func process(_ job: ClaimedJob, stopReason: @escaping @Sendable () -> Lane.StopReason? = { nil }) async -> Outcome {
        var jobLogger = logger
        jobLogger[metadataKey: "job.id"] = "\(job.id)"
        jobLogger[metadataKey: "job.model"] = "\(job.model)"
        let logger = jobLogger
        metrics.claimed(job)
        let started = ContinuousClock.now
        metrics.inFlight(+1)
        defer { metrics.inFlight(-1) }
        logger.info("job claimed", metadata: ["job.attempt": "\(job.attempt)"])
        let outcome = await run(job, stopReason: stopReason, logger: logger)
        metrics.finished(job, outcome: outcome, total: ContinuousClock.now - started)
        logger.info("job \(outcome)")
        return outcome
    }

    private func run(_ job: ClaimedJob, stopReason: @escaping @Sendable () -> Lane.StopReason?, logger: Logger) async -> Outcome {
        do {
            return try await steps(job, logger: logger)
        } catch is LeaseLost {
            logger.warning("another worker owns the job now; abandoning it")
            return .abandoned
        } catch is JobCancelled {
            logger.info("the job was cancelled; stopped")
            return .cancelled
        } catch {
            switch stopReason() {
            case .leaseLost: return .abandoned  // the claim loop logged it
            case .cancelled: return .cancelled
            case nil: break
            }
            // Cancelled: the worker is shutting down past its grace period.
            return await finish(job, logger: logger) { () async throws(ImageQueueError) in
                let position = try await queue.release(job)
                logger.info("released to the head of the queue", metadata: ["job.position": "\(position)"])
                return .released
            }
        }
    }

    private func steps(_ job: ClaimedJob, logger: Logger) async throws -> Outcome {
        var prompt = job.payload.prompt
        if job.payload.enhance {
            let clock = ContinuousClock.now
            let enhancement = await enhancer.enhance(prompt)
            try Task.checkCancellation()
            metrics.enhanced(job, duration: ContinuousClock.now - clock, fellBack: enhancement.fellBack)
            if enhancement.fellBack {
                logger.notice("enhancement fell back to the original prompt", metadata: ["reason": "\(enhancement.reason ?? "")"])
            }
            prompt = enhancement.prompt
            // The original prompt after a fallback is no enhancement: the event says why instead.
            var detail: [String: JSONValue] = ["enhancement": enhancement.eventDetail]
            if !enhancement.fellBack { detail["enhanced_prompt"] = .string(prompt) }
            try await report(job, .generating, detail)
        }

        let attempts = configuration.generationAttempts
        var attempt = 1
        let generationStart = ContinuousClock.now
        // The job's images so far: a retry after a transient failure goes on from the first
        // image still missing.
        let made = ImagesMade()
        while true {
            do {
                let images = try await generateReportingProgress(job, prompt: prompt, made: made)
                try Task.checkCancellation()
                metrics.generated(job, duration: ContinuousClock.now - generationStart)
                let result = try await store.store(images, job: job)
                return await finish(job, logger: logger) { () async throws(ImageQueueError) in
                    try await completions.complete(job, result: result)
                    return .completed
                }
            } catch let error as GenerationError {
                try Task.checkCancellation()
                if error.kind == .storageFailed {
                    logger.error("storing the image failed; the job goes back to the queue", metadata: ["error": "\(error.detail)"])
                    return await fail(job, error, retryable: true, logger: logger)
                }
                guard error.isTransient, attempt < attempts else {
                    logger.warning("generation failed", metadata: ["error": "\(error)", "generation.attempt": "\(attempt)"])
                    return await fail(job, error, retryable: false, logger: logger)
                }
                let delay = retryDelay(after: attempt, error: error)
                metrics.retried(job)
                logger.notice("generation failed; retrying", metadata: ["error": "\(error)", "generation.attempt": "\(attempt)",
                                                                       "retry.delay_ms": "\(delay.wholeMilliseconds)"])
                let retry: JSONValue = .object(["attempt": .int(Int64(attempt)), "of": .int(Int64(attempts)),
                                                "delay_ms": .int(delay.wholeMilliseconds)])
                try await report(job, .retrying, ["error": .object(["code": .string(error.kind.rawValue),
                                                                    "message": .string(error.userMessage)]),
                                                  "retry": retry])
                try await Task.sleep(for: delay)
                attempt += 1
                try await report(job, .generating, ["retry": .object(["attempt": .int(Int64(attempt)), "of": .int(Int64(attempts))])])
            }
        }
    }

    /// Exponential backoff with full jitter. A service's `Retry-After` is honoured as a floor,
    /// capped at four times the maximum delay so a bogus value cannot park the job for hours.
    func retryDelay(after attempt: Int, error: GenerationError) -> Duration {
        let ceiling = min(configuration.retryMaxDelay, configuration.retryBaseDelay * (1 << min(attempt - 1, 16)))
        let jittered = Duration.milliseconds(Int64.random(in: 0...max(1, ceiling.wholeMilliseconds)))
        if let asked = error.retryAfter { return max(min(asked, configuration.retryMaxDelay * 4), jittered) }
        return jittered
    }

    private func fail(_ job: ClaimedJob, _ error: GenerationError, retryable: Bool, logger: Logger) async -> Outcome {
        await finish(job, logger: logger) { () async throws(ImageQueueError) in
            let outcome = try await queue.fail(job, error: error.jobError, retryable: retryable)
            return outcome == .requeued ? .requeued : .failed
        }
    }

    /// Runs the generation with a sibling task that publishes its progress: the latest report
    /// at most every 500 ms, as a `generating` event with `progress` (and a stored preview).
    /// A lost lease or a cancel seen while publishing stops the generation.
    ///
    /// A job of n images (`n` in its request) takes one backend call per image, or fewer
    /// where the backend makes a batch in one call (`batchLimit`); the progress published
    /// covers the whole job: image k of n reporting f is (k + f) / n.
    private func generateReportingProgress(_ job: ClaimedJob, prompt: String, made: ImagesMade) async throws -> [GeneratedImage] {
        let total = job.payload.imageCount
        let batch = max(1, min(generator.batchLimit(for: job.model), total))
        let mailbox = ProgressMailbox()
        return try await withThrowingTaskGroup(of: [GeneratedImage]?.self) { group in
            group.addTask {
                for await _ in mailbox.signals {
                    guard let (fraction, preview) = mailbox.take() else { continue }
                    var detail: [String: JSONValue] = [:]
                    if let fraction { detail["progress"] = .double((fraction * 1000).rounded() / 1000) }
                    try await report(job, .generating, detail, preview: preview)
                    try await Task.sleep(for: .milliseconds(500))
                }
                return nil
            }
            group.addTask {
                defer { mailbox.finish() }
                while made.count < total {
                    let index = made.count
                    let count = min(batch, total - index)
                    let share = (start: Double(index) / Double(total), width: Double(count) / Double(total))
                    let request = GenerationRequest(jobID: job.id, model: job.model, prompt: prompt, count: count, index: index,
                                                    total: total, progress: ProgressReporter { fraction, preview in
                                                        mailbox.post(fraction.map { share.start + $0 * share.width }, preview)
                                                    })
                    let images = try await generator.generate(request)
                    guard images.count >= count else {
                        throw GenerationError(.invalidImage, "the backend answered \(images.count) of the \(count) images asked for")
                    }
                    try Task.checkCancellation()
                    made.append(images.prefix(count))
                    // One image of several done: the job's progress moves on even on a backend
                    // that reports none.
                    if made.count < total { mailbox.post(Double(made.count) / Double(total), nil) }
                }
                return made.all
            }
            while let next = try await group.next() {
                if let images = next {
                    group.cancelAll()
                    return images
                }
            }
            throw CancellationError()
        }
    }

    /// A progress event; best effort, except that a lost lease or a cancel stops the job.
    private func report(_ job: ClaimedJob, _ stage: JobStatus, _ detail: [String: JSONValue], preview: [UInt8]? = nil) async throws {
        do {
            try await queue.progress(job, stage: stage, detail: detail, preview: preview, previewTTL: configuration.previewTTL)
        } catch where error.code == .cancelled {
            throw JobCancelled()
        } catch where error.code == .staleToken || error.code == .notFound {
            throw LeaseLost()
        } catch {
            try Task.checkCancellation()
            logger.warning("could not publish progress", metadata: ["job.id": "\(job.id)", "error": "\(error.message)"])
        }
    }

    /// The last step of a job (complete, fail, release): retried through a Redis outage
    /// until the lease would have expired, and never cancelled half-way.
    private func finish(_ job: ClaimedJob, logger: Logger,
                        _ step: @escaping @Sendable () async throws(ImageQueueError) -> Outcome) async -> Outcome {
        let deadline = ContinuousClock.now + configuration.lease
        // A shutdown cancelling the job must not cancel this step.
        return await withoutCancellation {
            var failures = 0
            while true {
                do {
                    return try await step()
                } catch let error as ImageQueueError where error.code == .cancelled {
                    logger.info("the job was cancelled while it ran; its end is not recorded")
                    return .cancelled
                } catch let error as ImageQueueError where error.code == .staleToken || error.code == .notFound {
                    logger.warning("the job's end was refused: another worker owns the job now; abandoning it",
                                   metadata: ["error.code": "\(error.code.rawValue)"])
                    return .abandoned
                } catch {
                    failures += 1
                    let delay = RedisRetry.pause(afterFailures: failures)
                    if ContinuousClock.now + delay > deadline {
                        logger.error("could not record the job's end before its lease expired; it will be recovered",
                                     metadata: ["error": "\(error)"])
                        return .abandoned
                    }
                    if failures == 1 { logger.warning("\(RedisRetry.problem(error)); retrying", metadata: ["error": "\(error)"]) }
                    try? await Task.sleep(for: delay)
                }
            }
        }
    }
}

/// The images of a job made so far, in order (kept across the retries of its generation).
final class ImagesMade: Sendable {
    private let images = Mutex<[GeneratedImage]>([])

    var count: Int { images.withLock { $0.count } }
    var all: [GeneratedImage] { images.withLock { $0 } }
    func append(_ more: some Sequence<GeneratedImage>) { images.withLock { $0.append(contentsOf: more) } }
}

/// The latest progress a backend reported and not yet published, and a signal per report.
final class ProgressMailbox: Sendable {
    private let latest = Mutex<(fraction: Double?, preview: [UInt8]?, fresh: Bool)>((nil, nil, false))
    private let continuation: AsyncStream<Void>.Continuation
    let signals: AsyncStream<Void>

    init() {
        (signals, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// A report: a newer fraction replaces the older; a preview is kept until published.
    func post(_ fraction: Double?, _ preview: [UInt8]?) {
        let changed = latest.withLock { latest -> Bool in
            var changed = false
            if let fraction, fraction != latest.fraction { latest.fraction = fraction; changed = true }
            if let preview, preview.count <= WorkerQueue.maxPreviewBytes, ImageFormat.contentType(of: preview) != nil {
                latest.preview = preview
                changed = true
            }
            if changed { latest.fresh = true }
            return changed
        }
        if changed { continuation.yield() }
    }

    /// What is new since the last take, if anything (the preview only once).
    func take() -> (Double?, [UInt8]?)? {
        latest.withLock { latest in
            guard latest.fresh else { return nil }
            latest.fresh = false
            defer { latest.preview = nil }
            return (latest.fraction, latest.preview)
        }
    }

    func finish() { continuation.finish() }
}
