import FoundationEssentials

/// Everything known about one job: what `imagequeue status --json` prints.
public struct JobInfo: Sendable, Equatable, Encodable {
    /// The job's id.
    public var id: String
    /// Its model.
    public var model: String
    /// Its status.
    public var status: JobStatus
    /// Claims so far.
    public var attempt: Int
    /// Claims allowed.
    public var maxAttempts: Int
    /// Place in the queue (1 = next), only while queued.
    @NullWhenNil public var position: Int?
    /// The user's prompt.
    @NullWhenNil public var prompt: String?
    /// Who asked.
    @NullWhenNil public var user: String?
    /// Whether enhancement was asked for.
    public var enhance: Bool
    /// The improved prompt, once known.
    @NullWhenNil public var enhancedPrompt: String?
    /// Times in ms since the epoch (Redis server clock).
    @NullWhenNil public var enqueuedAt: Int64?
    /// When the latest attempt started.
    @NullWhenNil public var startedAt: Int64?
    /// When the job reached a terminal status.
    @NullWhenNil public var finishedAt: Int64?
    /// The worker of the latest attempt.
    @NullWhenNil public var worker: String?
    /// The result, once completed.
    @NullWhenNil public var result: JobResult?
    /// The reason it failed, or last failed.
    @NullWhenNil public var error: JobError?
    /// Metadata the producer attached.
    @NullWhenNil public var metadata: [String: String]?
    /// The latest event, as stored.
    public var lastEvent: StatusEvent?
    /// Its priority.
    public var priority: JobPriority
    /// How many images it makes.
    public var imageCount: Int
    /// While queued: the expected wait until it starts, ms, from its position, the model's
    /// concurrency and its recent run times; nil without run-time history.
    @NullWhenNil public var etaMilliseconds: Int64?
    /// The webhook asked for at enqueue and how its delivery goes; nil without one.
    @NullWhenNil public var webhook: WebhookStatus?
    /// Every status change, oldest first: `queued` at `enqueuedAt`, then the job hash's
    /// bounded `history` field (the oldest entries dropped past about 32).
    public var history: [JobHistoryEntry]

    enum CodingKeys: String, CodingKey {
        case id, model, status, attempt, maxAttempts = "max_attempts", position, prompt, user, enhance
        case enhancedPrompt = "enhanced_prompt", enqueuedAt = "enqueued_at", startedAt = "started_at"
        case finishedAt = "finished_at", worker, result, error, metadata, priority, imageCount = "n"
        case etaMilliseconds = "eta_ms"
        case webhook, history
    }

    /// Builds the record from a job hash (HGETALL) and its position.
    /// - Throws: `ImageQueueError` `.malformed` when the hash lacks a known status.
    init(id: JobID, hash: [String: String], position: Int?) throws(ImageQueueError) {
        guard let statusText = hash["status"], let status = JobStatus(rawValue: statusText) else {
            throw ImageQueueError(.malformed, "job \(id) has no valid status in Redis", jobID: id.rawValue)
        }
        let decoder = JSONDecoder()
        let payload = hash["request"].flatMap { try? decoder.decode(JobPayload.self, from: Data($0.utf8)) }
        self.id = id.rawValue
        model = id.model
        self.status = status
        attempt = Int(hash["attempt"] ?? "") ?? 0
        maxAttempts = Int(hash["max_attempts"] ?? "") ?? 1
        self.position = status == .queued ? position : nil
        prompt = payload?.prompt
        user = payload?.user
        enhance = hash["enhance"].map { $0 != "0" } ?? (payload?.enhance ?? true)
        metadata = payload?.metadata
        priority = payload?.priority ?? .normal
        imageCount = payload?.imageCount ?? 1
        etaMilliseconds = nil
        webhook = WebhookStatus(hash: hash)
        enhancedPrompt = hash["enhanced_prompt"].flatMap { $0.isEmpty ? nil : $0 }
        let enqueuedAt = hash["enqueued_at"].flatMap { Int64($0) }
        self.enqueuedAt = enqueuedAt
        startedAt = hash["started_at"].flatMap { Int64($0) }
        finishedAt = hash["finished_at"].flatMap { Int64($0) }
        worker = hash["worker"].flatMap { $0.isEmpty ? nil : $0 }
        result = hash["result"].flatMap { try? decoder.decode(JobResult.self, from: Data($0.utf8)) }
        error = hash["error"].flatMap { try? decoder.decode(JobError.self, from: Data($0.utf8)) }
        lastEvent = hash["event"].flatMap { try? StatusEvent(json: Array($0.utf8)) }
        history = JobHistoryEntry.entries(enqueuedAt: enqueuedAt, field: hash["history"])
    }
}

/// One status change of a job, as its timeline shows it.
public struct JobHistoryEntry: Sendable, Equatable, Encodable {
    /// The status it changed to.
    public var status: JobStatus
    /// When, ms since the epoch (Redis server clock).
    public var time: Int64
    /// For a claim (a running status after `queued`): the attempt it started; nil otherwise.
    @NullWhenNil public var attempt: Int?

    /// Creates an entry.
    public init(status: JobStatus, time: Int64, attempt: Int? = nil) {
        self.status = status
        self.time = time
        self.attempt = attempt
    }

    enum CodingKeys: String, CodingKey { case status, time, attempt }

    /// The timeline of a job hash: `queued` at `enqueuedAt` (enqueueJob writes no entry),
    /// then each entry of the `history` field, `status@ms` or `status@ms#attempt` joined by
    /// `;` (lua/includes/common.lua `appendHistory`). Unreadable entries are skipped.
    public static func entries(enqueuedAt: Int64?, field: String?) -> [JobHistoryEntry] {
        var entries: [JobHistoryEntry] = []
        if let enqueuedAt { entries.append(JobHistoryEntry(status: .queued, time: enqueuedAt)) }
        for part in (field ?? "").split(separator: ";") {
            guard let at = part.firstIndex(of: "@"), let status = JobStatus(rawValue: String(part[..<at])) else { continue }
            let rest = part[part.index(after: at)...]
            let hash = rest.firstIndex(of: "#")
            guard let time = Int64(rest[..<(hash ?? rest.endIndex)]) else { continue }
            entries.append(JobHistoryEntry(status: status, time: time,
                                           attempt: hash.flatMap { Int(rest[rest.index(after: $0)...]) }))
        }
        return entries
    }
}
