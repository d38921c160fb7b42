import RedisClient

/// Calls the model scripts with the protocol's fixed KEYS and first ARGV, and turns their
/// error replies into `ImageQueueError`s.
struct ScriptRunner: Sendable {
    let redis: any RedisClientProtocol
    let keys: QueueKeys

    /// The command for a model script: KEYS = the model keys (+ `extraKeys`),
    /// ARGV = model, events channel, then `arguments`.
    /// The scripts that change a job: their writes wait for the replicas the configuration
    /// asks for (`RedisConfiguration.waitReplicas`).
    static let awaitingReplicas: Set<String> = [
        QueueScripts.enqueueJob.name, QueueScripts.claimJob.name, QueueScripts.completeJob.name, QueueScripts.completeAndClaim.name,
        QueueScripts.failJob.name,
        QueueScripts.releaseJob.name, QueueScripts.cancelJob.name, QueueScripts.recoverExpired.name, QueueScripts.retryDead.name,
    ]

    /// The scripts that end jobs: they get `QueueKeys.statsKeys` as KEYS[9..10], and record the
    /// per-minute counters and latest completions there.
    static let recordingStats: Set<String> = [
        QueueScripts.claimJob.name, QueueScripts.completeJob.name, QueueScripts.failJob.name, QueueScripts.recoverExpired.name,
        QueueScripts.completeAndClaim.name,
    ]

    /// - Parameter confirmed: false sends a job-changing script without its `WAIT` (a claim
    ///   repeated to learn its jobs after replicas did not confirm it).
    func command(_ script: RedisScript, model: String, extraKeys: [String] = [], arguments: [any RedisArgument],
                 confirmed: Bool = true) -> RedisCommand {
        let statsKeys = Self.recordingStats.contains(script.name) ? keys.statsKeys(model) : []
        let command = RedisCommand.script(script, keys: keys.scriptKeys(model) + statsKeys + extraKeys,
                                          arguments: [model, keys.events(model)] + arguments)
        return confirmed && Self.awaitingReplicas.contains(script.name) ? command.awaitingReplicas() : command
    }

    /// Runs a model script.
    /// - Throws: `ImageQueueError`: the script's own codes mapped, Redis failures as `.redis`.
    func run(_ script: RedisScript, model: String, extraKeys: [String] = [], arguments: [any RedisArgument],
             jobID: String? = nil, confirmed: Bool = true) async throws(ImageQueueError) -> RESPValue {
        do {
            return try await redis.send(command(script, model: model, extraKeys: extraKeys, arguments: arguments, confirmed: confirmed))
        } catch {
            throw Self.mapError(error, operation: script.name, jobID: jobID)
        }
    }

    /// Maps a script's error reply (or a Redis failure) to a queue error.
    static func mapError(_ error: any Error, operation: String, jobID: String?) -> ImageQueueError {
        guard let redisError = error as? RedisError, let code = redisError.serverCode else {
            return .redis(error, operation: operation, jobID: jobID)
        }
        let detail = redisError.serverDetail
        switch code {
        case "NOT_FOUND": return ImageQueueError(.notFound, detail.isEmpty ? "no such job" : detail, jobID: jobID)
        case "NOT_QUEUED": return ImageQueueError(.notQueued, detail, jobID: jobID)
        case "STALE_TOKEN": return ImageQueueError(.staleToken, detail, jobID: jobID)
        case "CANCELLED": return ImageQueueError(.cancelled, detail, jobID: jobID)
        case "BAD_REQUEST", "EXISTS": return ImageQueueError(.invalidRequest, detail, jobID: jobID)
        case "UNREPLICATED":
            var unconfirmed = ImageQueueError(.notReplicated, "\(operation) ran on the Redis master, but \(detail)", jobID: jobID)
            unconfirmed.redisError = redisError
            return unconfirmed
        case "QUEUE_FULL":
            var full = ImageQueueError(.queueFull, "the queue is full (\(detail)): nothing was queued; try again later", jobID: jobID)
            full.retryAfter = ImageQueueError.fullRetryAfter
            return full
        default: return .redis(error, operation: operation, jobID: jobID)
        }
    }

    /// Maps an `.error` reply inside a pipeline.
    static func mapReply(_ value: RESPValue, operation: String, jobID: String?) -> ImageQueueError? {
        guard case .error(let text) = value else { return nil }
        return mapError(RedisError(.server, text), operation: operation, jobID: jobID)
    }
}

