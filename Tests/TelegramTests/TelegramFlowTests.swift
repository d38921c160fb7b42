import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The whole flow through the real binary: a command in, live status edits, the image out.
@Suite("telegram front: the flow", .serialized)
struct TelegramFlowTests {
    @Test("flux and sdxl: a status message edited to the end, then the image as a photo with the enhanced prompt")
    func fluxAndSDXLEndToEnd() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let worker = try h.startWorker()
        let front = try h.startFront("\(h.cli.prefix)-front")
        let flux = try await h.telegram.sendUpdate(text: "/image=flux/a lighthouse at dawn")
        let sdxl = try await h.telegram.sendUpdate(text: "/image=sdxl/a red fox in snow", userID: 7)
        let messages = try await h.waitForPhotos(2)
        try await h.telegram.waitFor("both status messages finished") { [h] in
            try await h.messages().filter { $0.text?.hasPrefix("✅ Done") == true }.count == 2
        }
        let final = try await h.messages()
        await h.stop(front, worker)

        for (command, model, prompt, chat) in [(flux, "flux", "a lighthouse at dawn", Int64(42)), (sdxl, "sdxl", "a red fox in snow", Int64(7))] {
            let replies = final.filter { $0.replyTo == command.messageID }
            #expect(replies.count == 2, "one status message and one photo for \(model): \(final)")
            let status = try #require(replies.first { !$0.isPhoto }, "\(final)")
            let photo = try #require(replies.first { $0.isPhoto }, "\(final)")
            #expect(status.chat == chat && photo.chat == chat)
            #expect(status.history.first?.hasPrefix("⏳ Queued for \(model)") == true, "\(status.history)")
            #expect(status.history.last?.hasPrefix("✅ Done in") == true, "\(status.history)")
            #expect(status.id < photo.id, "the status message comes first")
            #expect(photo.photoKind == "png")
            // The bytes uploaded are the stored image's, byte for byte.
            let jobID = try #require(photo.jobID)
            #expect(jobID.hasPrefix("\(model)-"))
            let job = try await h.cli.status(jobID)
            #expect(job["status"]?.string == "completed")
            #expect(job["user"]?.string == "tg:\(chat)")
            let path = try #require(job["result"]?["path"]?.string)
            let stored = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(photo.photoBytes == stored.count)
            #expect(photo.photoSHA256 == (try await sha256Hex(ofFile: path)), "the photo is the stored image")
            let enhanced = try #require(job["enhanced_prompt"]?.string)
            #expect(enhanced.hasPrefix(prompt) && enhanced != prompt, "the placeholder enhancer changed the prompt")
            #expect(photo.caption == enhanced, "the caption is the enhanced prompt")
        }
        _ = messages
        #expect(try await h.pendingDeliveries() == 0, "delivered jobs leave no record")
        #expect(!front.output.contains(h.tokenSecret), "the token never appears in the output")
    }

    @Test("queued jobs show their place in line, and it moves up as the queue drains")
    func positionsMoveUpAsTheQueueDrains() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let front = try h.startFront("\(h.cli.prefix)-front")
        // No worker yet: three jobs wait in flux's queue, in the order they were sent.
        let commands = try await h.telegram.sendUpdates(["/image=flux/one", "/image=flux/two", "/image=flux/three"])
        try await h.waitForMessages("three status messages") { $0.filter { !$0.isPhoto }.count == 3 }
        func status(of command: (updateID: Int64, messageID: Int64)) async throws -> BotMessageRecord {
            try #require(try await h.messages().first { !$0.isPhoto && $0.replyTo == command.messageID })
        }
        #expect(try await status(of: commands[0]).text == "⏳ Queued for flux: you are next.")
        #expect(try await status(of: commands[1]).text == "⏳ Queued for flux: position 2.")
        #expect(try await status(of: commands[2]).text == "⏳ Queued for flux: position 3.")

        // One image a second: each claim moves the others up, and their messages follow.
        let worker = try h.startWorker(delay: 1)
        try await h.waitForPhotos(3)
        try await h.waitForMessages("all finished") { $0.filter { $0.text?.hasPrefix("✅ Done") == true }.count == 3 }
        await h.stop(front, worker)

        let last = try await status(of: commands[2]).history
        let places = ["⏳ Queued for flux: position 3.", "⏳ Queued for flux: position 2.", "⏳ Queued for flux: you are next."]
            .map { line in last.firstIndex(of: line) }
        #expect(places.allSatisfy { $0 != nil }, "the last job's message counted down: \(last)")
        let indices = places.compactMap { $0 }
        #expect(indices == indices.sorted(), "in that order: \(last)")
        #expect(last.last?.hasPrefix("✅ Done in") == true, "\(last)")
        let second = try await status(of: commands[1]).history
        #expect(second.contains("⏳ Queued for flux: you are next."), "\(second)")
    }

    @Test("a failed job ends its status message with the error class's user-facing message")
    func failedJobIsReported() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let backends = try await FakeBackends.start()
        try await backends.script("flux", [["status": 400]])
        let worker = try h.cli.startWorker(["--models", "flux", "--backend", "http", "--lease-seconds", "3",
                                            "--output-dir", h.cli.outputDirectory(), "--id", "\(h.cli.prefix)-worker"],
                                           environment: backends.environment())
        let front = try h.startFront("\(h.cli.prefix)-front")
        let command = try await h.telegram.sendUpdate(text: "/image=flux/a refused prompt")
        try await h.waitForMessages("the failure shown") { $0.contains { $0.text?.hasPrefix("❌") == true } }
        await h.stop(front, worker)
        let messages = try await h.messages()
        #expect(messages.count == 1, "no photo, one status message: \(messages)")
        let status = try #require(messages.first)
        #expect(status.replyTo == command.messageID)
        #expect(status.text == "❌ The image service refused this request (HTTP 400).", "\(status.history)")
        #expect(try await h.pendingDeliveries() == 0)
    }

    @Test("a retried generation shows 'trying again'; an image kept in Redis (no shared disk) is uploaded from there")
    func retryAndRedisResultStore() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let backends = try await FakeBackends.start()
        // Retry-After makes the worker's wait at least 1 s, longer than the front's edit
        // interval, so the retrying stage is shown.
        try await backends.script("flux", [["status": 429, "headers": ["Retry-After": "1"]]])
        let worker = try h.cli.startWorker(["--models", "flux", "--backend", "http", "--lease-seconds", "3",
                                            "--output-dir", h.cli.outputDirectory(), "--id", "\(h.cli.prefix)-worker"],
                                           environment: backends.environment().merging([
                                               "IMAGEQUEUE_RESULT_STORE": "redis"]) { $1 })
        let front = try h.startFront("\(h.cli.prefix)-front", arguments: ["--no-enhance"])
        let command = try await h.telegram.sendUpdate(text: "/image=flux/a second try")
        let messages = try await h.waitForPhotos(1)
        try await h.waitForMessages("the status message finished") { $0.contains { $0.text?.hasPrefix("✅ Done") == true } }
        await h.stop(front, worker)

        let status = try #require(try await h.messages().first { !$0.isPhoto && $0.replyTo == command.messageID })
        #expect(status.history.contains { $0.hasPrefix("🔁 The image service had a hiccup; trying again") }, "\(status.history)")
        let photo = try #require(messages.first { $0.isPhoto })
        let job = try await h.cli.status(try #require(photo.jobID))
        #expect(job["result"]?["store"]?.string == "redis", "\(job)")
        #expect(job["enhance"] == .bool(false), "--no-enhance reaches the job")
        #expect(photo.caption == "a second try", "without enhancement the caption is the prompt")
        #expect(photo.photoKind == "png" && photo.photoBytes == 164, "the fake's 164-byte PNG, read from Redis")
    }

    @Test("several jobs in one chat share its pace: their status edits there are spaced by --chat-interval")
    func editsArePacedPerChat() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let worker = try h.startWorker(delay: 0.3)
        let front = try h.startFront("\(h.cli.prefix)-front", arguments: ["--chat-interval", "0.4"])
        try await h.telegram.sendUpdates(["/image=flux/one", "/image=flux/two", "/image=sdxl/three", "/image=sdxl/four"])
        try await h.waitForPhotos(4)
        try await h.waitForMessages("all finished") { $0.filter { $0.text?.hasPrefix("✅ Done") == true }.count == 4 }
        await h.stop(front, worker)

        let edits = try await h.telegram.calls("editMessageText").compactMap { ($0["time_ms"] as? NSNumber)?.int64Value }.sorted()
        #expect(edits.count >= 8, "every job's status was edited at least twice: \(edits.count)")
        let gaps = zip(edits.dropFirst(), edits).map { $0 - $1 }
        #expect(gaps.allSatisfy { $0 >= 380 }, "edits in one chat at least 0.4 s apart: \(gaps)")
    }

    @Test("429 from Telegram: the front waits the retry_after it was given, and sends the photo once")
    func floodControlIsHonoured() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        try await h.telegram.script("sendPhoto", [["status": 429, "retry_after": 2]])
        try await h.telegram.script("sendMessage", [["status": 429, "retry_after": 1]])
        // Edits of one message closer than 150 ms apart would be refused: the front's
        // throttle (200 ms here) never comes that close.
        try await h.telegram.setLimits(editMinIntervalMilliseconds: 150)
        let worker = try h.startWorker(delay: 0.5)
        let front = try h.startFront("\(h.cli.prefix)-front")
        let command = try await h.telegram.sendUpdate(text: "/image=flux/patience")
        try await h.waitForPhotos(1)
        try await h.waitForMessages("the status message finished") { $0.contains { $0.text?.hasPrefix("✅ Done") == true } }
        await h.stop(front, worker)

        let photos = try await h.telegram.calls("sendPhoto")
        #expect(photos.count == 2, "one refused with 429, one accepted: \(photos)")
        if photos.count == 2 {
            let refusedAt = (photos[0]["end_ms"] as? NSNumber)?.int64Value ?? 0
            let retriedAt = (photos[1]["time_ms"] as? NSNumber)?.int64Value ?? 0
            #expect((photos[0]["status"] as? NSNumber)?.intValue == 429)
            #expect(retriedAt - refusedAt >= 1950, "waited retry_after (2 s), not \(retriedAt - refusedAt) ms")
        }
        let sends = try await h.telegram.calls("sendMessage")
        #expect(sends.count == 2, "the status message was refused once, then sent: \(sends)")
        let messages = try await h.messages()
        #expect(messages.filter(\.isPhoto).count == 1)
        #expect(messages.filter { !$0.isPhoto && $0.replyTo == command.messageID }.count == 1, "\(messages)")
        #expect((try await h.telegram.state()["flood_refusals"] as? NSNumber)?.intValue == 0, "edits were throttled")
    }
}

/// The lowercase hex SHA-256 of a file, by sha256sum (in every Debian).
func sha256Hex(ofFile path: String) async throws -> String {
    let result = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["sha256sum", path])
    return result.stdout.split(separator: " ").first.map(String.init) ?? ""
}
