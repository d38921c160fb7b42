// Fuzz target `job-json`: the JSON the queue reads back from Redis and from the Bot API.
//
// The whole input goes to every decoder: `StatusEvent(json:)` (an event from pub/sub or a
// job's `event` field) and the status line the Telegram front makes of it, `JobPayload`
// (the job's `request`), `WorkerInfo`, `DeliveryRecord`, and the Bot API envelopes of
// `getUpdates` and `sendMessage`. Then the input, cut at NUL bytes, fills a job hash's
// fields in the order of `hashFields` for `JobInfo(id:hash:position:)` (what
// `imagequeue status` reads), whose result is encoded as `status --json` prints it; and
// the first part is parsed as a job id.
import FoundationEssentials
@testable import ImageQueue
@testable import TelegramFront

private let hashFields = ["request", "event", "result", "error", "status", "attempt", "max_attempts", "enhance",
                          "enhanced_prompt", "enqueued_at", "started_at", "finished_at", "worker"]
private let jobID = try! JobID("flux-01jfuzz")

@_cdecl("LLVMFuzzerTestOneInput")
public func jobJSONFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let json = Data(bytes)
    let decoder = JSONDecoder()

    if let event = try? StatusEvent(json: bytes) {
        precondition(event.fields["v"]?.intValue == 1, "accepted an event that is not v1")
        _ = Replies.status(event)
        _ = Replies.status(event, position: 2)
        _ = try? JSONEncoder().encode(event.fields)
    }
    _ = try? decoder.decode(JobPayload.self, from: json)
    _ = try? decoder.decode(WorkerInfo.self, from: json)
    _ = try? decoder.decode(DeliveryRecord.self, from: json)
    if let envelope = try? decoder.decode(BotEnvelope<[BotUpdate]>.self, from: json), let updates = envelope.result {
        for update in updates {
            if let text = update.message?.text { _ = ImageCommand.parse(text, botUsername: "imagequeue_bot") }
        }
    }
    _ = try? decoder.decode(BotEnvelope<BotMessage>.self, from: json)

    let parts = bytes.split(separator: 0, maxSplits: hashFields.count - 1, omittingEmptySubsequences: false)
    var hash: [String: String] = ["status": "queued"]
    for (field, part) in zip(hashFields, parts) { hash[field] = String(decoding: part, as: UTF8.self) }
    if let info = try? JobInfo(id: jobID, hash: hash, position: 1) {
        _ = try? JSONEncoder().encode(info)
    }
    if let first = parts.first { _ = try? JobID(String(decoding: first, as: UTF8.self)) }
    return 0
}
