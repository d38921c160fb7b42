import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The inline buttons through the real binary: Cancel under a waiting job's status message,
/// Again under a delivered image; albums of several images; priorities from the allow-list.
@Suite("telegram front: buttons, albums and priorities", .serialized)
struct TelegramButtonsTests {
    /// Waits for the status message replying to `command` to carry a button; returns it.
    func statusWithButton(_ h: TelegramHarness, replyingTo command: Int64) async throws -> BotMessageRecord {
        try await h.waitForMessages("the status message with its button") { messages in
            messages.contains { !$0.isPhoto && $0.replyTo == command && !$0.buttons.isEmpty }
        }
        return try #require(try await h.messages().first { !$0.isPhoto && $0.replyTo == command })
    }

    /// Waits until the press `queryID` has been answered; returns the press as the fake keeps it.
    func answered(_ h: TelegramHarness, _ queryID: String) async throws -> [String: Any] {
        try await h.telegram.waitFor("the button press answered") { [h] in
            try await h.telegram.callbackQueries().contains { $0["id"] as? String == queryID && ($0["answered"] as? NSNumber)?.boolValue == true }
        }
        return try #require(try await h.telegram.callbackQueries().first { $0["id"] as? String == queryID })
    }

    /// How long the answer took after the press, ms.
    func answerDelay(_ press: [String: Any]) -> Int64 {
        ((press["answered_ms"] as? NSNumber)?.int64Value ?? .max) - ((press["time_ms"] as? NSNumber)?.int64Value ?? 0)
    }

    @Test("Cancel by the asker: answered at once, the queued job is cancelled, its status message says so and loses the button")
    func cancelByTheAsker() async throws {
        let h = try await TelegramHarness.start()
        let front = try h.startFront("\(h.cli.prefix)-front")
        // No worker: the job waits, and its status message carries Cancel.
        let command = try await h.telegram.sendUpdate(text: "/image=flux/a fox to cancel")
        let status = try await statusWithButton(h, replyingTo: command.messageID)
        let data = try #require(status.buttons.first)
        #expect(status.buttons.count == 1 && data.hasPrefix("c:flux-"), "\(status)")
        let job = String(data.dropFirst(2))
        #expect(try await h.cli.status(job)["status"]?.string == "queued")
        let sent = try #require(try await h.telegram.calls("sendMessage").first)
        let markup = try #require(sent["params"] as? [String: Any])["reply_markup"] as? [String: Any]
        let label = ((markup?["inline_keyboard"] as? [[[String: Any]]])?.first?.first?["text"] as? String) ?? ""
        #expect(label.contains("Cancel"), "the button says what it does: \(label)")

        let press = try await h.telegram.pressButton(messageID: status.id, data: data, userID: 42)
        let answer = try await answered(h, press.queryID)
        #expect(answer["text"] as? String == "Cancelling…")
        #expect(answerDelay(answer) < 3000, "answered at once: \(answerDelay(answer)) ms")
        try await h.waitForMessages("the status message shows the cancel") { messages in
            messages.contains { $0.id == status.id && $0.text == "🚫 The request was cancelled." }
        }
        #expect(try await h.cli.status(job)["status"]?.string == "cancelled")
        let final = try #require(try await h.messages().first { $0.id == status.id })
        #expect(final.buttons.isEmpty, "the Cancel button is gone: \(final)")
        try await h.telegram.waitFor("the delivery finished") { [h] in try await h.pendingDeliveries() == 0 }
        await h.stop(front)
        #expect(try await h.cli.json(["queues", "--json"])["flux"]?["pending"]?.integer == 0)
        #expect(!front.output.contains(h.tokenSecret), "the token never appears in the output")
    }

    @Test("Cancel by someone else in the chat is refused with a short answer and changes nothing")
    func cancelBySomeoneElse() async throws {
        let h = try await TelegramHarness.start()
        let front = try h.startFront("\(h.cli.prefix)-front")
        let command = try await h.telegram.sendUpdate(text: "/image=flux/a group fox", userID: 42, chatID: -100777)
        let status = try await statusWithButton(h, replyingTo: command.messageID)
        let data = try #require(status.buttons.first)
        let job = String(data.dropFirst(2))

        let press = try await h.telegram.pressButton(messageID: status.id, data: data, userID: 7, username: "mallory")
        let answer = try await answered(h, press.queryID)
        #expect(answer["text"] as? String == "Only the person who asked can cancel this.")
        try await h.telegram.waitFor("the press committed") { [h] in
            (try await h.telegram.state()["pending_updates"] as? NSNumber)?.intValue == 0
        }
        #expect(try await h.cli.status(job)["status"]?.string == "queued", "the job still waits")
        let after = try #require(try await h.messages().first { $0.id == status.id })
        #expect(after.buttons == [data], "the Cancel button stays for its asker: \(after)")
        #expect(after.text?.hasPrefix("⏳ Queued for flux") == true, "\(after)")
        #expect(try await h.pendingDeliveries() == 1, "its delivery is still pending")
        #expect(try await h.telegram.calls("sendMessage").count == 1, "nothing else was sent")
        await h.stop(front)
        #expect(try await h.cli.json(["queues", "--json"])["flux"]?["pending"]?.integer == 1)
    }

    @Test("Again on a delivered photo queues the same prompt as a new job, with its own status message; past the rate limit it is refused")
    func againAndTheRateLimit() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let worker = try h.startWorker()
        let environment = ["IMAGEQUEUE_RATE_LIMIT": "2/60"]
        let front = try h.startFront("\(h.cli.prefix)-front", arguments: ["--no-enhance"], environment: environment)
        let command = try await h.telegram.sendUpdate(text: "/image=sdxl/a fox again and again")
        try await h.waitForPhotos(1)
        try await h.waitForMessages("the first status message finished") { $0.contains { $0.text?.hasPrefix("✅ Done") == true } }
        let first = try #require(try await h.messages().first(where: \.isPhoto))
        let firstJob = try #require(first.jobID)
        #expect(first.buttons == ["a:\(firstJob)"], "the photo carries Again: \(first)")
        let firstStatus = try #require(try await h.messages().first { !$0.isPhoto && $0.replyTo == command.messageID })
        #expect(firstStatus.buttons.isEmpty, "a finished job's status message has no Cancel: \(firstStatus)")

        let press = try await h.telegram.pressButton(messageID: first.id, data: "a:\(firstJob)", userID: 42)
        let answer = try await answered(h, press.queryID)
        #expect(answer["text"] as? String == "🔁 Queued again.")
        #expect(answerDelay(answer) < 3000, "answered at once: \(answerDelay(answer)) ms")
        let messages = try await h.waitForPhotos(2)
        try await h.waitForMessages("the second status message finished") {
            $0.filter { $0.text?.hasPrefix("✅ Done") == true }.count == 2
        }
        let second = try #require(messages.filter(\.isPhoto).last)
        let secondJob = try #require(second.jobID)
        #expect(secondJob != firstJob && secondJob.hasPrefix("sdxl-"))
        #expect(second.replyTo == first.id, "the new image answers the one it repeats")
        #expect(second.buttons == ["a:\(secondJob)"])
        let againStatus = try #require(try await h.messages().first { !$0.isPhoto && $0.replyTo == first.id })
        #expect(againStatus.history.first?.hasPrefix("⏳ Queued for sdxl") == true, "its own status message: \(againStatus.history)")
        let repeated = try await h.cli.status(secondJob)
        #expect(repeated["prompt"]?.string == "a fox again and again")
        #expect(repeated["user"]?.string == "tg:42")
        #expect(repeated["enhance"] == .bool(false), "the same enhancement setting as the first job")
        #expect(repeated["metadata"]?["telegram_again_of"]?.string == firstJob, "\(repeated)")
        #expect(second.caption == "a fox again and again")

        // The command and one Again used the limit (2 per minute): the next Again is refused.
        let refused = try await h.telegram.pressButton(messageID: second.id, data: "a:\(secondJob)", userID: 42)
        let refusal = try await answered(h, refused.queryID)
        let text = refusal["text"] as? String ?? ""
        #expect(text.hasPrefix("You have made too many requests. Please try again in "), "\(text)")
        #expect((refusal["show_alert"] as? NSNumber)?.boolValue == true, "a refusal is shown as an alert")
        try await h.telegram.waitFor("the press committed") { [h] in
            (try await h.telegram.state()["pending_updates"] as? NSNumber)?.intValue == 0
        }
        await h.stop(front, worker)
        let queues = try await h.cli.json(["queues", "--json"])
        #expect(queues["sdxl"]?["completed_total"]?.integer == 2 && queues["sdxl"]?["pending"]?.integer == 0, "\(queues)")
        #expect(try await h.messages().filter(\.isPhoto).count == 2)
        #expect(try await h.telegram.calls("answerCallbackQuery").count == 2, "each press answered once")
        #expect(!front.output.contains(h.tokenSecret))
    }

    @Test("a front SIGKILLed after acting on Again but before committing the press: its successor handles the press again and queues no second job")
    func againIsNotRepeatedByARestart() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let worker = try h.startWorker()
        let doomed = try h.startFront("\(h.cli.prefix)-doomed", arguments: ["--no-enhance"])
        try await h.telegram.sendUpdate(text: "/image=flux/a comet once more")
        try await h.waitForPhotos(1)
        try await h.telegram.waitFor("the first delivery finished") { [h] in try await h.pendingDeliveries() == 0 }
        let photo = try #require(try await h.messages().first(where: \.isPhoto))
        let job = try #require(photo.jobID)

        // The Again job's status message is held at the fake: the press is answered and its
        // job queued, but the front dies before it commits the press.
        try await h.telegram.script("sendMessage", [["delay_ms": 5000]])
        let press = try await h.telegram.pressButton(messageID: photo.id, data: "a:\(job)")
        _ = try await answered(h, press.queryID)
        doomed.send(SIGKILL)
        #expect(try await doomed.waitForExit() == .signalled(SIGKILL))
        #expect((try await h.telegram.state()["pending_updates"] as? NSNumber)?.intValue == 1, "the press was not confirmed")

        let successor = try h.startFront("\(h.cli.prefix)-successor", arguments: ["--no-enhance"])
        // Confirmed only once the successor committed it: any job it queued exists by then.
        try await h.telegram.waitFor("the press handled again and committed", timeout: .seconds(30)) { [h] in
            (try await h.telegram.state()["pending_updates"] as? NSNumber)?.intValue == 0
        }
        try await h.waitForPhotos(2)
        try await h.telegram.waitFor("the Again delivery finished") { [h] in try await h.pendingDeliveries() == 0 }
        await h.stop(successor, worker)

        let flux = try await h.cli.json(["queues", "--json"])["flux"]
        let jobs = (flux?["completed_total"]?.integer ?? 0) + (flux?["pending"]?.integer ?? 0) + (flux?["active"]?.integer ?? 0)
        #expect(jobs == 2, "the command's job and one Again job: \(String(describing: flux))")
        let photos = try await h.messages().filter(\.isPhoto)
        #expect(photos.count == 2, "\(photos)")
        #expect(Set(photos.compactMap(\.jobID)).count == 2)
        let answers = try await h.telegram.calls("answerCallbackQuery").map { ($0["status"] as? NSNumber)?.intValue }
        #expect(answers == [200, 400], "answered once; the repeat's answer is refused as too old and only logged: \(answers)")
        #expect(successor.output.contains("could not answer a button press"), "\(successor.output)")
    }

    @Test("x3: three images arrive as one album (sendMediaGroup), captioned once; Again goes on the status message")
    func threeImagesAsOneAlbum() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let worker = try h.startWorker()
        let front = try h.startFront("\(h.cli.prefix)-front")
        let command = try await h.telegram.sendUpdate(text: "/image=flux/x3 three foxes in snow")
        try await h.waitForPhotos(3)
        try await h.waitForMessages("the status message finished") { $0.contains { $0.text?.hasPrefix("✅ Done") == true } }
        await h.stop(front, worker)

        let albums = try await h.telegram.calls("sendMediaGroup")
        #expect(albums.count == 1, "one album: \(albums.count) sendMediaGroup calls")
        #expect(try await h.telegram.calls("sendPhoto").isEmpty, "no single photos")
        let uploaded = try #require(albums.first?["photos"] as? [[String: Any]])
        #expect(uploaded.count == 3)
        let messages = try await h.messages()
        let photos = messages.filter(\.isPhoto)
        #expect(photos.count == 3)
        #expect(Set(photos.compactMap(\.mediaGroupID)).count == 1 && photos.allSatisfy { $0.mediaGroupID != nil }, "\(photos)")
        #expect(photos.allSatisfy { $0.replyTo == command.messageID })
        let job = try #require(photos.first?.jobID)
        let info = try await h.cli.status(job)
        #expect(info["n"]?.integer == 3, "\(info)")
        let enhanced = try #require(info["enhanced_prompt"]?.string)
        #expect(photos.first?.caption == enhanced, "the caption on the first photo")
        #expect(photos.dropFirst().allSatisfy { $0.caption == nil }, "and only there: \(photos)")
        // Each photo is its stored image, in order.
        let paths = (info["result"]?["images"]?.array ?? []).compactMap { $0["path"]?.string }
        #expect(paths.count == 3, "\(info)")
        for (photo, path) in zip(photos, paths) {
            #expect(photo.photoSHA256 == (try await sha256Hex(ofFile: path)), "\(photo) is \(path)")
        }
        let status = try #require(messages.first { !$0.isPhoto && $0.replyTo == command.messageID })
        #expect(status.history.last?.hasPrefix("✅ Done in") == true, "\(status.history)")
        #expect(status.buttons == ["a:\(job)"], "an album carries no buttons: Again is on the status message: \(status)")
        #expect(try await h.pendingDeliveries() == 0)
    }

    @Test("TELEGRAM_PRIORITY_IDS: those users' jobs are queued with priority high, everyone else's normal")
    func priorityUsers() async throws {
        let h = try await TelegramHarness.start()
        let front = try h.startFront("\(h.cli.prefix)-front", environment: ["TELEGRAM_PRIORITY_IDS": "42, 9"])
        let vip = try await h.telegram.sendUpdate(text: "/image=flux/an important fox", userID: 42)
        let other = try await h.telegram.sendUpdate(text: "/image=flux/an ordinary fox", userID: 7)
        let vipStatus = try await statusWithButton(h, replyingTo: vip.messageID)
        let otherStatus = try await statusWithButton(h, replyingTo: other.messageID)
        await h.stop(front)
        let vipJob = try #require(vipStatus.buttons.first.map { String($0.dropFirst(2)) })
        let otherJob = try #require(otherStatus.buttons.first.map { String($0.dropFirst(2)) })
        #expect(try await h.cli.status(vipJob)["priority"]?.string == "high")
        #expect(try await h.cli.status(otherJob)["priority"]?.string == "normal")

        let bad = try await h.cli.run(["telegram", "--poll-timeout", "1"],
                                      environment: h.telegram.environment().merging(["TELEGRAM_PRIORITY_IDS": "42,bob"]) { $1 }, timeout: 30)
        #expect(bad.status == 2 && bad.stderr.contains("TELEGRAM_PRIORITY_IDS holds 'bob'"), "\(bad.stderr)")
    }
}
