import Foundation
@testable import ImageQueue
import Testing

/// The API's and `--json`'s objects keep one shape: every property present, nil as `null`
/// (`@NullWhenNil`), and decoding takes an absent key as nil.
@Suite struct NullWhenNilCodingTests {
    private func object(_ value: some Encodable) throws -> (keys: Set<String>, nulls: Set<String>, text: String) {
        let data = try JSONEncoder().encode(value)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (Set(object.keys), Set(object.filter { $0.value is NSNull }.keys), String(decoding: data, as: UTF8.self))
    }

    @Test func aJobThatIsNotQueuedEncodesItsPositionAsNullAndDecodesBack() throws {
        let started = EnqueuedJob(id: "flux-01jb0000000000000000000000", model: "flux", status: .generating, position: nil, created: false)
        let shape = try object(started)
        #expect(shape.keys == ["id", "model", "status", "position", "created"], "\(shape.text)")
        #expect(shape.nulls == ["position"], "\(shape.text)")
        #expect(try JSONDecoder().decode(EnqueuedJob.self, from: JSONEncoder().encode(started)) == started)

        let queued = EnqueuedJob(id: "flux-01jb0000000000000000000001", model: "flux", status: .queued, position: 3, created: true)
        #expect(try JSONDecoder().decode(EnqueuedJob.self, from: JSONEncoder().encode(queued)) == queued)
        // An absent key is nil, as null is.
        let absent = #"{"id":"flux-01jb0000000000000000000002","model":"flux","status":"completed","created":false}"#
        #expect(try JSONDecoder().decode(EnqueuedJob.self, from: Data(absent.utf8)).position == nil)
    }

    @Test func aFreshJobsRecordHasEveryKeyWithItsUnknownsAsNull() throws {
        let id = try JobID("flux-01jb0000000000000000000003")
        let info = try JobInfo(id: id, hash: ["status": "queued", "request": #"{"prompt":"a fox","user":"u1"}"#,
                                              "enqueued_at": "1730000000000"], position: 2)
        let shape = try object(info)
        #expect(shape.keys == ["id", "model", "status", "attempt", "max_attempts", "position", "prompt", "user", "enhance",
                               "enhanced_prompt", "enqueued_at", "started_at", "finished_at", "worker", "result", "error",
                               "metadata", "priority", "n", "eta_ms", "webhook", "history"], "\(shape.text)")
        #expect(shape.nulls == ["enhanced_prompt", "started_at", "finished_at", "worker", "result", "error", "metadata",
                                "eta_ms", "webhook"], "\(shape.text)")
        let history = try object(try #require(info.history.first))
        #expect(history.keys == ["status", "time", "attempt"] && history.nulls == ["attempt"], "\(history.text)")
    }

    @Test func queueStatsAndWebhookStatusKeepTheirNullsAndDecodeWithoutThem() throws {
        let stats = QueueStats(pending: 0, active: 0, dead: 0, concurrency: 1, completedTotal: 0, failedTotal: 0,
                               oldestPendingAgeMilliseconds: nil)
        let shape = try object(stats)
        #expect(shape.nulls == ["oldest_pending_age_ms", "run_ms_avg"], "\(shape.text)")
        #expect(try JSONDecoder().decode(QueueStats.self, from: JSONEncoder().encode(stats)) == stats)
        let older = #"{"pending":1,"active":0,"dead":0,"concurrency":1,"completed_total":5,"failed_total":0}"#
        let decoded = try JSONDecoder().decode(QueueStats.self, from: Data(older.utf8))
        #expect(decoded.oldestPendingAgeMilliseconds == nil && decoded.averageRunMilliseconds == nil && !decoded.paused)

        let hook = try object(WebhookStatus(url: "https://example.test/hook", state: "pending", attempts: 1, lastStatus: 503))
        #expect(hook.keys == ["url", "state", "attempts", "last_status", "last_error", "last_attempt_at", "delivered_at"])
        #expect(hook.nulls == ["last_error", "last_attempt_at", "delivered_at"], "\(hook.text)")
    }
}
