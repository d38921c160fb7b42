import FoundationEssentials

/// One published status change (protocol version 1), as sent on the job's and the model's
/// channels and stored on the job.
public struct StatusEvent: Sendable, Equatable {
    /// The job.
    public var id: String
    /// Its model.
    public var model: String
    /// The new status.
    public var status: JobStatus
    /// When, in ms since the epoch (Redis server clock).
    public var time: Int64
    /// Claims so far.
    public var attempt: Int
    /// The job's revision: +1 per event, so a watcher can drop what it has already seen.
    public var revision: Int64
    /// Place in the queue, for `queued`.
    public var position: Int?
    /// For `queued`: the expected wait until the job starts, ms (see `JobInfo.etaMilliseconds`);
    /// nil while the model has no run-time history.
    public var etaMilliseconds: Int64?
    /// The improved prompt, once known.
    public var enhancedPrompt: String?
    /// The worker holding the job.
    public var worker: String?
    /// The result, for `completed`.
    public var result: JobResult?
    /// The reason, for `failed` (and a requeue after a failure).
    public var error: JobError?
    /// For `generating`: how far the backend is, 0 to 1, when it reports it: the event's
    /// `progress` member clamped to 0...1; nil when it is absent or not a finite number.
    public var progress: Double?
    /// For `generating`: the event says `"preview": true`, i.e. the worker has just stored a
    /// preview image (read it with `QueueInspector.preview` or `GET /v1/jobs/{id}/preview`).
    /// Anything but the JSON value `true` is false.
    public var hasPreview: Bool
    /// Every field as published, including stage details (`enhancement`, `retry`...).
    public var fields: [String: JSONValue]
    /// The event exactly as published.
    public var json: String

    /// Decodes a published event.
    /// - Throws: `ImageQueueError` `.malformed` for anything but a v1 event.
    public init(json bytes: [UInt8]) throws(ImageQueueError) {
        let decoder = JSONDecoder()
        guard let fields = try? decoder.decode([String: JSONValue].self, from: Data(bytes)) else {
            throw ImageQueueError(.malformed, "status event is not a JSON object")
        }
        guard fields["v"]?.intValue == 1 else {
            throw ImageQueueError(.malformed, "status event has unsupported version \(fields["v"].map { "\($0)" } ?? "none")")
        }
        guard let id = fields["id"]?.stringValue, let model = fields["model"]?.stringValue,
              let statusText = fields["status"]?.stringValue, let status = JobStatus(rawValue: statusText) else {
            throw ImageQueueError(.malformed, "status event lacks id, model or a known status")
        }
        self.id = id
        self.model = model
        self.status = status
        time = fields["time"]?.intValue ?? 0
        attempt = Int(fields["attempt"]?.intValue ?? 0)
        revision = fields["rev"]?.intValue ?? 0
        position = fields["position"]?.intValue.map { Int($0) }
        etaMilliseconds = fields["eta_ms"]?.intValue.flatMap { $0 >= 0 ? $0 : nil }
        enhancedPrompt = fields["enhanced_prompt"]?.stringValue
        worker = fields["worker"]?.stringValue
        result = Self.decode(JobResult.self, fields["result"])
        error = Self.decode(JobError.self, fields["error"])
        progress = fields["progress"]?.doubleValue.flatMap { $0.isFinite ? min(1, max(0, $0)) : nil }
        hasPreview = fields["preview"] == .bool(true)
        self.fields = fields
        json = String(decoding: bytes, as: UTF8.self)
    }

    /// `progress` in whole percent, rounded down (0.456 is 45), nil without progress. A
    /// ratio such as 29/100, whose binary product with 100 falls a hair under 29, counts as 29.
    public var progressPercent: Int? {
        progress.map { Int(($0 * 100 + 1e-9).rounded(.down)) }
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ value: JSONValue?) -> T? {
        guard let value, case .object = value, let data = try? JSONEncoder().encode(value) else { return nil }
        return try? JSONDecoder().decode(type, from: data)
    }
}
