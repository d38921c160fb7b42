import ImageQueue
import RedisClient
import Testing
import TestSupport

/// A generating job's live progress and preview: what `StatusEvent` reads from the events
/// reportProgress publishes, and `QueueInspector.preview`.
@Suite(.runsClients) struct ProgressAndPreviewTests {
    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 9, 9]
    static let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 0x4A, 0x46, 0x49, 0x46, 0, 1]

    private static func event(_ members: String) throws -> StatusEvent {
        try StatusEvent(json: Array(#"{"v":1,"id":"flux-01abc","model":"flux","status":"generating","time":1,"attempt":1,"rev":3\#(members)}"#.utf8))
    }

    @Test func progressIsClampedAndOnlyANumberAndPreviewOnlyTrue() throws {
        let plain = try Self.event("")
        #expect(plain.progress == nil && plain.progressPercent == nil && !plain.hasPreview)
        let both = try Self.event(#","progress":0.456,"preview":true"#)
        #expect(both.progress == 0.456 && both.progressPercent == 45 && both.hasPreview)
        #expect(try Self.event(#","progress":1"#).progress == 1)
        #expect(try Self.event(#","progress":0"#).progressPercent == 0)
        #expect(try Self.event(#","progress":7.5"#).progress == 1, "clamped to 1")
        #expect(try Self.event(#","progress":-0.2"#).progress == 0, "clamped to 0")
        #expect(try Self.event(#","progress":"0.5""#).progress == nil, "a string is not a progress")
        #expect(try Self.event(#","progress":null"#).progress == nil)
        #expect(try Self.event(#","progress":{"value":0.5}"#).progress == nil)
        for text in [#""true""#, "1", "false", "null"] {
            #expect(try !Self.event(#","preview":\#(text)"#).hasPreview, "preview \(text)")
        }
        // Whole percent rounded down, without binary artefacts: 29/100 is 29, not 28.
        #expect(try Self.event(#","progress":0.29"#).progressPercent == 29)
        #expect(try Self.event(#","progress":0.999"#).progressPercent == 99)
        #expect(try Self.event(#","progress":1"#).progressPercent == 100)
        for step in 0...100 {
            let event = try Self.event(#","progress":\#(Double(step) / 100)"#)
            #expect(event.progressPercent == step, "\(step)/100 shows \(event.progressPercent.map(String.init) ?? "nothing")")
        }
    }

    @Test func aReportedProgressAndPreviewArriveInTheEventAndThePreviewIsReadable() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let job = try await queue.enqueue("a lighthouse, slowly", enhance: false)
        let worker = queue.worker()
        defer { worker.close() }
        let claim = try await queue.claim(worker)
        #expect(try await queue.client.inspector.preview(job.id) == nil, "no preview before the worker stores one")

        try await worker.progress(claim, stage: .generating, detail: ["progress": .double(0.45), "preview": .bool(true)])
        var event = try await queue.client.inspector.status(job.id).lastEvent
        #expect(event?.status == .generating && event?.progress == 0.45 && event?.progressPercent == 45 && event?.hasPreview == true,
                "\(event?.json ?? "no event")")
        try await worker.progress(claim, stage: .generating, detail: ["progress": .double(0.5)], preview: Self.png)
        event = try await queue.client.inspector.status(job.id).lastEvent
        #expect(event?.progress == 0.5 && event?.hasPreview == true, "\(event?.json ?? "no event")")
        let stored = try await queue.client.inspector.preview(job.id)
        #expect(stored?.bytes == Self.png && stored?.contentType == "image/png")

        // Whatever is at the key is typed by its first bytes; anything else is no preview.
        let key = queue.keys.preview(try JobID(job.id))
        try await queue.redis.send("SET", key, Self.jpeg, "PX", "60000")
        let jpeg = try await queue.client.inspector.preview(job.id)
        #expect(jpeg?.bytes == Self.jpeg && jpeg?.contentType == "image/jpeg")
        try await queue.redis.send("SET", key, Array("GIF89a".utf8), "PX", "60000")
        #expect(try await queue.client.inspector.preview(job.id) == nil)
        try await queue.redis.send("DEL", key)
        #expect(try await queue.client.inspector.preview(job.id) == nil)

        await #expect(throws: ImageQueueError.self) { _ = try await queue.client.inspector.preview("not an id") }
        do throws(ImageQueueError) {
            _ = try await queue.client.inspector.preview("flux-")
            Issue.record("a malformed id was accepted")
        } catch {
            #expect(error.code == .invalidJobID)
        }
    }
}
