import FoundationEssentials
import Logging
import RedisClient
import ServiceLifecycle
import Synchronization

/// A job a worker holds: its lease is valid while `token` is the job's current fencing token.
public struct ClaimedJob: Sendable, Equatable {
    /// The job's id.
    public let id: String
    /// Its model.
    public let model: String
    /// The fencing token of this claim; every later call for the job must carry it.
    public let token: String
    /// Which claim this is (1 for the first).
    public let attempt: Int
    /// Claims allowed before it is dead-lettered.
    public let maxAttempts: Int
    /// What the producer asked for.
    public let payload: JobPayload
    /// When it was enqueued, ms since the epoch.
    public let enqueuedAt: Int64
}

/// What `claim` found.
public enum ClaimOutcome: Sendable, Equatable {
    /// A job, now leased to this worker.
    case claimed(ClaimedJob)
    /// The model already runs as many jobs as its concurrency limit.
    case full
    /// No job is waiting.
    case empty
    /// The model is paused (`ImageQueueClient.pause`): nothing is claimed until it resumes.
    case paused
}

/// What a claim of several jobs found.
public enum ClaimBatch: Sendable, Equatable {
    /// One job or more, in queue order, now leased to this worker.
    case claimed([ClaimedJob])
    /// The model already runs as many jobs as its concurrency limit.
    case full
    /// No job is waiting.
    case empty
    /// The model is paused (`ImageQueueClient.pause`): nothing is claimed until it resumes.
    case paused
}

/// What `fail` did with the job.
public enum FailOutcome: String, Sendable {
    /// Back at the head of its queue for another attempt.
    case requeued
    /// In the dead list.
    case dead
}

/// The worker side of the protocol: claim, heartbeat, report, finish, hand back, recover,
/// and wait for work without polling. Every call that changes a job carries its fencing
/// token; a stale one is refused with `.staleToken` and changes nothing.
///
/// A `Service`: its connections (the command connection and one blocking connection per
/// waiter, made on first use) live while `run()` runs.
public final class WorkerQueue: ClosableService {
    /// This worker's id, recorded on the jobs it claims.
    public let workerID: String
    /// The settings (models, prefix, retention).
    public let configuration: QueueConfiguration
    let runner: ScriptRunner
    private let redisConfiguration: RedisConfiguration
    private let logger: Logger
    /// One blocking connection per model and waiter slot, made on first use.
    private let waiters = Mutex<[String: any RedisClientProtocol]>([:])
    /// Runs those blocking connections.
    private let blockingClients = ChildClients()
    /// The pub/sub connection cancels of running jobs arrive on (connects on first use).
    private let cancelSubscriber: RedisSubscriber

    /// How long one doorbell wait blocks inside Redis before it loops (below the socket timeout).
    public let blockTimeout: Duration

    /// Creates the worker side of the queue.
    public init(redis redisConfiguration: RedisConfiguration, configuration: QueueConfiguration = QueueConfiguration(),
                workerID: String, blockTimeout: Duration = .seconds(5), logger: Logger = Logger(label: "imagequeue.worker")) {
        self.workerID = workerID
        self.configuration = configuration
        self.redisConfiguration = redisConfiguration
        self.blockTimeout = blockTimeout
        self.logger = logger
        runner = ScriptRunner(redis: makeRedisClient(configuration: redisConfiguration, logger: logger), keys: configuration.keys)
        cancelSubscriber = RedisSubscriber(configuration: redisConfiguration, logger: logger)
    }

    deinit { close() }

    /// With a Sentinel configuration, the master this process uses and its last move seen.
    public var sentinelMaster: SentinelMaster? { redisConfiguration.sentinel.flatMap { SentinelMaster.known($0.masterName) } }

    /// Runs every connection until the task is cancelled or `close()` is called (graceful
    /// shutdown is left to the worker's services, which finish their jobs first). Call it once.
    /// - Throws: the first error a connection's `run()` throws.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.runner.redis.run() }
            group.addTask { await self.blockingClients.run() }
            group.addTask { try await self.cancelSubscriber.run() }
        }
    }

    /// Ends `run()`: every connection closes, and calls still queued fail.
    public func close() {
        runner.redis.close()
        blockingClients.finish()
        cancelSubscriber.close()
    }

    /// Claims the head job of `model` unless the model is at its concurrency limit. A job
    /// whose request cannot be read is dead-lettered (`malformed_job`) and the next tried.
    /// A claim whose answer is lost on the way (Redis restarted, the call timed out) is asked
    /// again under the same claim id, and so still returns the job it took.
    /// - Throws: `ImageQueueError` `.redis`.
    public func claim(model: String, lease: Duration) async throws(ImageQueueError) -> ClaimOutcome {
        switch try await claim(model: model, lease: lease, upTo: 1) {
        case .claimed(let jobs): .claimed(jobs[0])
        case .full: .full
        case .empty: .empty
        case .paused: .paused
        }
    }

    /// Claims up to `count` jobs from the head of `model`'s queue in one call, as many as the
    /// model's concurrency limit leaves room for, in queue order. Unreadable jobs are
    /// dead-lettered as in `claim(model:lease:)`.
    /// - Throws: `ImageQueueError` `.redis`.
    public func claim(model: String, lease: Duration, upTo count: Int) async throws(ImageQueueError) -> ClaimBatch {
        while true {
            let reply = try await claimReply(model: model, lease: lease, claimID: newClaimID(), count: count)
            if let batch = try await batch(model: model, reply: reply) { return batch }
        }
    }

    /// Waits for the model's doorbell as `waitForWork` does, with a claim of up to `count` jobs
    /// sent behind the `BLPOP` on the same connection. Redis runs the claim as soon as the
    /// `BLPOP` returns (rung, or timed out after `blockTimeout`), so a woken worker has its jobs
    /// without a further round trip. What the claim found is returned, as by
    /// `claim(model:lease:upTo:)`.
    ///
    /// When the answer is lost after the call went out (the connection broke, the wait was
    /// cancelled), the claim may have taken jobs: they are asked for again under the same claim
    /// id, outside any cancellation, and returned, so the caller can run or release them
    /// instead of leaving them held until their lease expires.
    /// - Throws: `ImageQueueError` `.redis`.
    public func waitThenClaim(model: String, lease: Duration, upTo count: Int, slot: Int = 0) async throws(ImageQueueError) -> ClaimBatch {
        let claimID = newClaimID()
        let claimCommand = runner.command(QueueScripts.claimJob, model: model,
                                          arguments: claimArguments(lease: lease, claimID: claimID, answerLost: false, count: count))
        let replies: [RESPValue]
        do {
            replies = try await waiter(model: model, slot: slot).pipeline([doorbellWait(model), claimCommand], timeout: blockTimeout + .seconds(5))
        } catch {
            guard let failure = error as? RedisError, [.connectionLost, .timeout, .cancelled].contains(failure.kind) else {
                throw ImageQueueError.redis(error, operation: "wait for work")  // nothing was sent
            }
            // Asked again to its end even when the caller is cancelled (a shutdown): the claim
            // may have taken jobs, and only its answer names them. After a cancellation only
            // briefly, so a shutdown is not held up by an unreachable Redis.
            let patience = failure.kind == .cancelled || Task.isCancelled ? Duration.seconds(2) : lease
            let queue = self
            let repeated = await withoutCancellation { () async -> Result<RESPValue, ImageQueueError> in
                do throws(ImageQueueError) {
                    return .success(try await queue.claimReply(model: model, lease: lease, claimID: claimID, count: count,
                                                               answerLost: true, patience: patience))
                } catch {
                    return .failure(error)
                }
            }
            return try await batch(model: model, reply: repeated.get()) ?? .empty
        }
        var reply = replies[1]
        if let failure = ScriptRunner.mapReply(reply, operation: QueueScripts.claimJob.name, jobID: nil) {
            guard failure.code == .notReplicated else { throw failure }
            // The claim ran on the master: its jobs are this worker's, asked for again.
            reply = try await claimReply(model: model, lease: lease, claimID: claimID, count: count, unconfirmedBefore: 1)
        }
        if let batch = try await batch(model: model, reply: reply) { return batch }
        // Every job it took was unreadable and dead-lettered: the queue may hold more.
        return try await claim(model: model, lease: lease, upTo: count)
    }

    private func newClaimID() -> String {
        "\(workerID):\(String(UInt64.random(in: .min ... .max), radix: 36))"
    }

    private func claimArguments(lease: Duration, claimID: String, answerLost: Bool, count: Int) -> [any RedisArgument] {
        [workerID, lease.wholeMilliseconds, claimID, answerLost ? "1" : "0", max(1, min(count, 1000))]
    }

    /// The claim's outcome from claimJob's reply; nil when every job it took was unreadable
    /// (and is dead-lettered now).
    private func batch(model: String, reply: RESPValue) async throws(ImageQueueError) -> ClaimBatch? {
        guard let parts = reply.array, let kind = parts.first?.string else {
            throw ImageQueueError(.malformed, "unexpected reply from claimJob: \(reply)")
        }
        switch kind {
        case "full": return .full
        case "empty": return .empty
        case "paused": return .paused
        case "ok" where parts.count > 1 && (parts.count - 1) % 6 == 0:
            var jobs: [ClaimedJob] = []
            jobs.reserveCapacity((parts.count - 1) / 6)
            let decoder = JSONDecoder()
            for start in stride(from: 1, to: parts.count, by: 6) {
                if let job = await readable(model: model, parts[start..<start + 6], decoder: decoder) { jobs.append(job) }
            }
            return jobs.isEmpty ? nil : .claimed(jobs)
        default:
            throw ImageQueueError(.malformed, "unexpected reply from claimJob: \(reply)")
        }
    }

    /// The claimed job of six reply fields, or nil after dead-lettering a job whose request
    /// cannot be run by this worker.
    private func readable(model: String, _ fields: ArraySlice<RESPValue>, decoder: JSONDecoder) async -> ClaimedJob? {
        let parts = Array(fields)
        let id = parts[0].string ?? ""
        let token = parts[1].string ?? ""
        guard let bytes = parts[4].bytes,
              let payload = try? decoder.decode(JobPayload.self, from: Data(bytes)) else {
            logger.warning("dead-lettering a job whose request is not readable", metadata: ["job.id": "\(id)"])
            let job = ClaimedJob(id: id, model: model, token: token, attempt: 0, maxAttempts: 0,
                                 payload: JobPayload(JobRequest(model: model, prompt: "", user: "")), enqueuedAt: 0)
            _ = try? await fail(job, error: JobError(code: "malformed_job", message: "the job's request is not valid JSON of protocol v1"),
                                retryable: false)
            return nil
        }
        guard payload.v == JobPayload.version else {
            // A newer producer's job: run it only with workers that understand it. In the
            // dead list it waits, with the reason, to be retried after the upgrade.
            logger.warning("dead-lettering a job of another protocol version", metadata: ["job.id": "\(id)", "job.version": "\(payload.v)"])
            let job = ClaimedJob(id: id, model: model, token: token, attempt: 0, maxAttempts: 0, payload: payload, enqueuedAt: 0)
            _ = try? await fail(job, error: JobError(code: "unsupported_version",
                                                     message: "the job's request is protocol v\(payload.v); this worker reads v\(JobPayload.version)"),
                                retryable: false)
            return nil
        }
        return ClaimedJob(id: id, model: model, token: token, attempt: Int(parts[2].int ?? 1),
                          maxAttempts: Int(parts[3].int ?? 1), payload: payload, enqueuedAt: parts[5].int ?? 0)
    }

    /// Calls claimJob with `claimID` for up to `count` jobs. Once an answer is lost after the
    /// call was sent (the connection broke, or the reply did not come in time), that call may
    /// have claimed jobs: it is asked again with the same id through every transient failure
    /// (Redis down, still loading its data after a restart) until an answer comes, which is
    /// those jobs if they were claimed, instead of leaving them held by nobody until their
    /// lease expires. Gives up after `patience` (default a lease: by then the recovery sweep
    /// has put such jobs back anyway). `answerLost` starts it as such a repeat.
    ///
    /// A claim the replicas did not confirm (`IMAGEQUEUE_REDIS_WAIT_REPLICAS`) ran on the
    /// master: it is repeated under its id, which confirms it again, a few times; then its
    /// jobs are taken unconfirmed rather than held by nobody until their lease expires (a
    /// failover now may run such a job twice, never lose it: the job itself was confirmed
    /// when it was enqueued).
    private func claimReply(model: String, lease: Duration, claimID: String, count: Int,
                            answerLost lostBefore: Bool = false, patience: Duration? = nil,
                            unconfirmedBefore: Int = 0) async throws(ImageQueueError) -> RESPValue {
        let deadline = ContinuousClock.now + (patience ?? lease)
        var answerLost = lostBefore || unconfirmedBefore > 0
        var unconfirmed = unconfirmedBefore
        while true {
            do {
                let confirmed = unconfirmed < 3
                if !confirmed {
                    logger.warning("taking claimed jobs the replicas did not confirm; a failover now could run them twice",
                                   metadata: ["job.model": "\(model)"])
                }
                return try await runner.run(QueueScripts.claimJob, model: model,
                                            arguments: claimArguments(lease: lease, claimID: claimID, answerLost: answerLost, count: count),
                                            confirmed: confirmed)
            } catch where error.code == .notReplicated {
                answerLost = true
                unconfirmed += 1
                continue
            } catch {
                guard let failure = error.redisError else { throw error }
                if failure.kind == .connectionLost || failure.kind == .timeout {
                    if !answerLost {
                        logger.info("the answer to a claim was lost; asking again",
                                    metadata: ["job.model": "\(model)", "error": "\(error.message)"])
                    }
                    answerLost = true
                }
                guard answerLost, failure.isTransient, ContinuousClock.now < deadline, !Task.isCancelled else { throw error }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Extends the job's lease to now + `lease`.
    /// - Throws: `ImageQueueError` `.staleToken` (someone else owns it now), `.notFound`, `.redis`.
    public func heartbeat(_ job: ClaimedJob, lease: Duration) async throws(ImageQueueError) {
        try await heartbeat([job], lease: lease)[0].get()
    }

    /// Extends the leases of several jobs of one model in one call; each job's own outcome
    /// comes back in order (`.staleToken`, `.notFound` for a job this worker no longer owns).
    /// - Throws: `ImageQueueError` `.redis` when the call itself fails.
    public func heartbeat(_ jobs: [ClaimedJob], lease: Duration) async throws(ImageQueueError) -> [Result<Void, ImageQueueError>] {
        guard let first = jobs.first else { return [] }
        var arguments: [any RedisArgument] = [first.id, first.token, lease.wholeMilliseconds]
        for job in jobs.dropFirst() { arguments += [job.id, job.token] as [any RedisArgument] }
        return try await batchCall(QueueScripts.extendLease, jobs: jobs, arguments: arguments)
    }

    /// Calls a script that takes several jobs of one model and answers each job's outcome in
    /// order (for one job: the bare reply, an error reply being that job's outcome).
    /// - Throws: `ImageQueueError` `.redis` when the call itself fails.
    private func batchCall(_ script: RedisScript, jobs: [ClaimedJob], arguments: [any RedisArgument]) async throws(ImageQueueError) -> [Result<Void, ImageQueueError>] {
        let reply: RESPValue
        do {
            reply = try await runner.redis.send(runner.command(script, model: jobs[0].model, arguments: arguments))
        } catch {
            if jobs.count == 1, let redisError = error as? RedisError, redisError.kind == .server {
                return [.failure(ScriptRunner.mapError(error, operation: script.name, jobID: jobs[0].id))]
            }
            throw ScriptRunner.mapError(error, operation: script.name, jobID: jobs.count == 1 ? jobs[0].id : nil)
        }
        let values = jobs.count == 1 ? [reply] : (reply.array ?? [])
        let operation = script.name
        return jobs.indices.map { index in
            guard index < values.count else {
                return .failure(ImageQueueError(.malformed, "\(operation) answered \(values.count) of \(jobs.count) jobs", jobID: jobs[index].id))
            }
            if let error = ScriptRunner.mapReply(values[index], operation: operation, jobID: jobs[index].id) { return .failure(error) }
            return .success(())
        }
    }

    /// The longest preview `progress` stores.
    public static let maxPreviewBytes = 64 * 1024

    /// Moves the job to another running stage and publishes it with `detail` merged into
    /// the event (`enhanced_prompt` is also stored on the job). A `preview` (PNG or JPEG, at
    /// most `maxPreviewBytes`) is stored under `QueueKeys.preview` for `previewTTL`, and the
    /// event then says `"preview": true`; all of it fenced by the job's token.
    /// - Throws: `ImageQueueError` `.staleToken`, `.cancelled`, `.notFound`, `.invalidRequest`, `.redis`.
    public func progress(_ job: ClaimedJob, stage: JobStatus, detail: [String: JSONValue] = [:],
                         preview: [UInt8]? = nil, previewTTL: Duration = .seconds(600)) async throws(ImageQueueError) {
        var detail = detail
        var arguments: [any RedisArgument] = [job.id, job.token, stage.rawValue]
        if let preview {
            guard preview.count <= Self.maxPreviewBytes else {
                throw ImageQueueError(.invalidRequest, "a preview may hold at most \(Self.maxPreviewBytes) bytes, not \(preview.count)")
            }
            detail["preview"] = .bool(true)
            let json = (try? JSONEncoder().encode(detail)).map { Array($0) } ?? Array("{}".utf8)
            let jobID = try JobID(job.id)
            arguments += [json, runner.keys.preview(jobID), preview, max(1, previewTTL.wholeMilliseconds)]
        } else {
            arguments.append((try? JSONEncoder().encode(detail)).map { Array($0) } ?? Array("{}".utf8))
        }
        _ = try await runner.run(QueueScripts.reportProgress, model: job.model, arguments: arguments, jobID: job.id)
    }

    /// The ids of running jobs of `models` cancelled from now on (`.resubscribed` after a lost
    /// connection: cancels meanwhile were missed, and the next heartbeat reports them).
    /// - Throws: `ImageQueueError` `.redis` when Redis cannot be reached.
    public func cancellations(models: [String]) async throws(ImageQueueError) -> AsyncStream<SubscriptionEvent> {
        do {
            return try await cancelSubscriber.subscribe(models.map { runner.keys.cancellations($0) })
        } catch {
            throw ImageQueueError.redis(error, operation: "subscribe to cancellations", jobID: nil)
        }
    }

    /// Records the result; the job is completed and its slot free.
    /// - Throws: `ImageQueueError` `.staleToken` (nothing recorded), `.notFound`, `.redis`.
    public func complete(_ job: ClaimedJob, result: JobResult) async throws(ImageQueueError) {
        try await complete([(job, result)])[0].get()
    }

    /// Records the results of several jobs of one model in one call; each job succeeds or
    /// fails alone, and its outcome comes back in order.
    /// - Throws: `ImageQueueError` `.redis` when the call itself fails.
    public func complete(_ results: [(job: ClaimedJob, result: JobResult)]) async throws(ImageQueueError) -> [Result<Void, ImageQueueError>] {
        guard let first = results.first else { return [] }
        let encoder = JSONEncoder()
        func json(_ result: JobResult) -> [UInt8] { (try? encoder.encode(result)).map { Array($0) } ?? [] }
        var arguments: [any RedisArgument] = [first.job.id, first.job.token, json(first.result), configuration.retention.wholeMilliseconds]
        for (job, result) in results.dropFirst() { arguments += [job.id, job.token, json(result)] as [any RedisArgument] }
        return try await batchCall(QueueScripts.completeJob, jobs: results.map(\.job), arguments: arguments)
    }

    /// What `complete(_:thenClaimUpTo:lease:)` did: each job's completion, and the next jobs.
    public struct CompletionAndClaim: Sendable {
        /// Each job's outcome in order, or the failure of the call as a whole (the completions
        /// may or may not have been recorded: send them again, a repeat is answered as done).
        public var completions: Result<[Result<Void, ImageQueueError>], ImageQueueError>
        /// What the claim found; nil when it is not known (the call failed and its claim could
        /// not be asked about: any job it took returns to the queue when its lease expires):
        /// claim as usual then.
        public var claimed: ClaimBatch?
    }

    /// Records the results of several jobs of one model and claims up to `count` more for
    /// this worker in the same call (`completeAndClaim`): a worker with every slot busy gets
    /// its next jobs without a round trip of its own. A call whose answer is lost (or whose
    /// replication was not confirmed) may have claimed jobs: they are asked for again under
    /// the call's claim id, as `waitThenClaim` does, so they are run, not left held.
    public func complete(_ results: [(job: ClaimedJob, result: JobResult)], thenClaimUpTo count: Int,
                         lease: Duration) async -> CompletionAndClaim {
        guard let first = results.first else {
            return CompletionAndClaim(completions: .success([]), claimed: nil)
        }
        let model = first.job.model
        let encoder = JSONEncoder()
        func json(_ result: JobResult) -> [UInt8] { (try? encoder.encode(result)).map { Array($0) } ?? [] }
        let claimID = newClaimID()
        var arguments = claimArguments(lease: lease, claimID: claimID, answerLost: false, count: count)
        arguments.append(configuration.retention.wholeMilliseconds)
        for (job, result) in results { arguments += [job.id, job.token, json(result)] as [any RedisArgument] }
        let operation = QueueScripts.completeAndClaim.name
        let failure: ImageQueueError
        do {
            let reply = try await runner.redis.send(runner.command(QueueScripts.completeAndClaim, model: model, arguments: arguments))
            guard let parts = reply.array, parts.count == 2 else {
                throw ImageQueueError(.malformed, "unexpected reply from \(operation): \(reply)")
            }
            let values = parts[0].array ?? []
            let completions = results.indices.map { index -> Result<Void, ImageQueueError> in
                let id = results[index].job.id
                guard index < values.count else {
                    return .failure(ImageQueueError(.malformed, "\(operation) answered \(values.count) of \(results.count) jobs", jobID: id))
                }
                if let error = ScriptRunner.mapReply(values[index], operation: operation, jobID: id) { return .failure(error) }
                return .success(())
            }
            var claimed = try await batch(model: model, reply: parts[1])
            if claimed == nil {
                // Every job it took was unreadable and dead-lettered: the queue may hold more.
                claimed = try? await claim(model: model, lease: lease, upTo: count)
            }
            return CompletionAndClaim(completions: .success(completions), claimed: claimed)
        } catch let error as ImageQueueError {
            failure = error
        } catch {
            failure = ScriptRunner.mapError(error, operation: operation, jobID: nil)
        }
        // The call may have run: ask its claim again under the same id (outside cancellation).
        let lost = failure.code == .notReplicated
            || [.connectionLost, .timeout, .cancelled].contains(failure.redisError?.kind)
        guard lost else { return CompletionAndClaim(completions: .failure(failure), claimed: nil) }
        let queue = self
        let repeated = await withoutCancellation { () async -> ClaimBatch? in
            guard let reply = try? await queue.claimReply(model: model, lease: lease, claimID: claimID, count: count,
                                                          answerLost: true,
                                                          unconfirmedBefore: failure.code == .notReplicated ? 1 : 0) else { return nil }
            return try? await queue.batch(model: model, reply: reply)
        }
        return CompletionAndClaim(completions: .failure(failure), claimed: repeated ?? nil)
    }

    /// Ends this attempt with an error: back to the head of the queue when `retryable` and
    /// attempts remain, otherwise into the dead list.
    /// - Throws: `ImageQueueError` `.staleToken`, `.notFound`, `.redis`.
    @discardableResult
    public func fail(_ job: ClaimedJob, error: JobError, retryable: Bool) async throws(ImageQueueError) -> FailOutcome {
        let json = (try? JSONEncoder().encode(error)).map { Array($0) } ?? []
        let reply = try await runner.run(QueueScripts.failJob, model: job.model,
                                         arguments: [job.id, job.token, retryable ? "retry" : "permanent", json], jobID: job.id)
        return FailOutcome(rawValue: reply.string ?? "") ?? .dead
    }

    /// Hands the job back to the head of its queue at once (graceful shutdown); the
    /// attempt does not count. Returns its position.
    /// - Throws: `ImageQueueError` `.staleToken`, `.notFound`, `.redis`.
    @discardableResult
    public func release(_ job: ClaimedJob) async throws(ImageQueueError) -> Int {
        let reply = try await runner.run(QueueScripts.releaseJob, model: job.model, arguments: [job.id, job.token], jobID: job.id)
        return Int(reply.int ?? 0)
    }

    /// Returns jobs whose lease expired to the head of their queue (or the dead list after
    /// their last attempt). Safe to run from every worker at once.
    /// - Throws: `ImageQueueError` `.redis`.
    public func recoverExpired(model: String, limit: Int = 100) async throws(ImageQueueError) -> (requeued: Int, dead: Int) {
        let reply = try await runner.run(QueueScripts.recoverExpired, model: model, arguments: [limit])
        let parts = reply.array ?? []
        return (Int(parts.first?.int ?? 0), Int(parts.count > 1 ? parts[1].int ?? 0 : 0))
    }

    /// Blocks inside Redis until the model's doorbell rings (a job may be claimable) or
    /// `blockTimeout` passes. Returns true when woken. Costs one BLPOP; no polling.
    /// Loops that wait at the same time pass different `slot`s: each gets its own blocking
    /// connection, so none waits behind another and each can be interrupted alone.
    /// - Throws: `ImageQueueError` `.redis` (after the connection's own reconnect attempts).
    public func waitForWork(model: String, slot: Int = 0) async throws(ImageQueueError) -> Bool {
        do {
            let reply = try await waiter(model: model, slot: slot).send(doorbellWait(model), timeout: blockTimeout + .seconds(5))
            return !reply.isNull
        } catch {
            throw ImageQueueError.redis(error, operation: "wait for work")
        }
    }

    /// The blocking connection of one model and waiter slot.
    private func waiter(model: String, slot: Int) -> any RedisClientProtocol {
        waiters.withLock { waiters in
            let name = "\(model)#\(slot)"
            if let existing = waiters[name] { return existing }
            var blocking = redisConfiguration
            blocking.commandTimeout = blockTimeout + .seconds(5)
            let made = makeRedisClient(configuration: blocking, logger: logger)
            waiters[name] = made
            blockingClients.start(made)
            return made
        }
    }

    /// `BLPOP` on the model's doorbell for `blockTimeout`.
    private func doorbellWait(_ model: String) -> RedisCommand {
        RedisCommand("BLPOP", runner.keys.wake(model), String(Double(blockTimeout.wholeMilliseconds) / 1000))
    }
}
