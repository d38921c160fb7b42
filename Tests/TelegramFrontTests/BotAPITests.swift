import CurlHTTP
import Foundation
import Testing
import TestSupport
@testable import TelegramFront

/// The Bot API client against the fake Bot API: answers, failures and their kinds, and the
/// token kept out of every error.
@Suite struct BotAPITests {
    func client(_ fake: FakeTelegram, token: String? = nil) -> BotAPI {
        BotAPI(token: token ?? fake.token, apiURL: fake.apiURL, requestTimeout: .seconds(10))
    }

    /// The BotAPIError `operation` throws (nil when it succeeds or throws something else).
    func failure(_ operation: () async throws -> Void) async -> BotAPIError? {
        do {
            try await operation()
            return nil
        } catch {
            return error as? BotAPIError
        }
    }

    @Test func sendsEditsAndDeletesMessages() async throws {
        let fake = try await FakeTelegram.start()
        let bot = client(fake)
        let me = try await bot.getMe()
        #expect(me.id == 123456 && me.username == "iq_test_bot")
        let command = try await fake.sendUpdate(text: "/image=flux/x", userID: 5)
        let updates = try await bot.getUpdates(offset: 0, timeout: .seconds(1))
        #expect(updates.map(\.updateID) == [command.updateID])
        #expect(updates.first?.message?.text == "/image=flux/x" && updates.first?.message?.from?.id == 5)

        let sent = try await bot.sendMessage(chat: 5, text: "⏳ first", replyTo: command.messageID)
        try await bot.editMessageText(chat: 5, message: sent.messageID, text: "🎨 second")
        try await bot.editMessageText(chat: 5, message: sent.messageID, text: "🎨 second")  // unchanged: not an error
        let gone = await failure { try await bot.editMessageText(chat: 5, message: 999_999, text: "x") }
        #expect(gone?.kind == .badRequest && gone?.isMessageGone == true)
        try await bot.deleteMessage(chat: 5, message: sent.messageID)
        let messages = try await fake.messages()
        #expect(messages.first?["history"] as? [String] == ["⏳ first", "🎨 second"])
        #expect((messages.first?["reply_to"] as? NSNumber)?.int64Value == command.messageID)
        #expect((messages.first?["deleted"] as? NSNumber)?.boolValue == true)
        // Asking from the next offset confirms the update for good.
        #expect(try await bot.getUpdates(offset: command.updateID + 1, timeout: .zero).isEmpty)
        #expect((try await fake.state()["pending_updates"] as? NSNumber)?.intValue == 0)
    }

    @Test func uploadsAPhotoAsMultipartWithCaptionAndReply() async throws {
        let fake = try await FakeTelegram.start()
        let bot = client(fake)
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }  // every byte value, CR and LF included
        let caption = "a \"quoted\" fox — ünïcödé 🦊\nsecond line"
        _ = try await bot.sendPhoto(chat: 9, image: png, contentType: "image/png", fileName: "flux-1.png", caption: caption, replyTo: 77)
        let photo = try #require(try await fake.messages().first)
        #expect(photo["caption"] as? String == caption)
        #expect((photo["reply_to"] as? NSNumber)?.int64Value == 77)
        let details = try #require(photo["photo"] as? [String: Any])
        #expect((details["bytes"] as? NSNumber)?.intValue == png.count)
        #expect(details["filename"] as? String == "flux-1.png")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("iq-botapi-\(UUID().uuidString).png")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(png).write(to: file)
        let sum = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["sha256sum", file.path])
        #expect(details["sha256"] as? String == sum.stdout.split(separator: " ").first.map(String.init), "the bytes arrive unchanged")
    }

    @Test func sendsAnAlbumOfThreePhotosCaptionedOnce() async throws {
        let fake = try await FakeTelegram.start()
        let bot = client(fake)
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        let images = (1...3).map { index in
            BotAPI.Upload(bytes: png + Array(repeating: UInt8(index), count: 100 * index), contentType: "image/png",
                          fileName: "flux-1.\(index).png")
        }
        let sent = try await bot.sendMediaGroup(chat: 9, images: images, caption: "three foxes", replyTo: 77)
        #expect(sent.count == 3, "Telegram answers the album's messages")
        let calls = try await fake.calls("sendMediaGroup")
        #expect(calls.count == 1)
        let photos = try #require(calls.first?["photos"] as? [[String: Any]])
        #expect(photos.map { ($0["bytes"] as? NSNumber)?.intValue ?? 0 } == [108, 208, 308], "every image, in order")
        let messages = try await fake.messages()
        #expect(messages.count == 3)
        #expect(messages.map { $0["caption"] as? String } == ["three foxes", nil, nil], "captioned once, on the first")
        #expect(Set(messages.compactMap { $0["media_group_id"] as? String }).count == 1)
        #expect(messages.allSatisfy { ($0["reply_to"] as? NSNumber)?.int64Value == 77 })
    }

    @Test func buttonsAreSentEditedAwayAndTheirPressesAnsweredOnce() async throws {
        let fake = try await FakeTelegram.start()
        let bot = client(fake)
        let cancel = InlineButton(text: "Cancel", callbackData: "c:flux-01abc")
        let status = try await bot.sendMessage(chat: 5, text: "⏳ Queued", buttons: [cancel])
        try await bot.editMessageText(chat: 5, message: status.messageID, text: "🎨 Generating", buttons: [cancel])
        func markup() async throws -> [String: Any]? { try await fake.messages().first?["reply_markup"] as? [String: Any] }
        let keyboard = try #require(try await markup()?["inline_keyboard"] as? [[[String: Any]]])
        #expect(keyboard.first?.first?["callback_data"] as? String == "c:flux-01abc")
        #expect(keyboard.first?.first?["text"] as? String == "Cancel")

        let press = try await fake.pressButton(messageID: status.messageID, data: "c:flux-01abc", userID: 8)
        let updates = try await bot.getUpdates(offset: 0, timeout: .seconds(1))
        let query = try #require(updates.first?.callbackQuery)
        #expect(updates.first?.message == nil)
        #expect(query.id == press.queryID && query.from.id == 8 && query.data == "c:flux-01abc")
        #expect(query.message?.messageID == status.messageID && query.message?.chat.id == 5)
        try await bot.answerCallbackQuery(query.id, text: "Cancelling…")
        let again = await failure { try await bot.answerCallbackQuery(query.id, text: "twice") }
        #expect(again?.kind == .badRequest, "a press is answered once")
        #expect(try await fake.callbackQueries().first?["text"] as? String == "Cancelling…")
        #expect(try await fake.calls("getUpdates").first.flatMap { ($0["params"] as? [String: Any])?["allowed_updates"] as? [String] }
                == ["message", "callback_query"], "the front asks for button presses")

        // An edit without buttons removes them, as Telegram does.
        try await bot.editMessageText(chat: 5, message: status.messageID, text: "🚫 Cancelled")
        #expect(try await markup() == nil)
    }

    @Test func classifiesRefusals() async throws {
        let fake = try await FakeTelegram.start()
        let bot = client(fake)
        try await fake.script("sendMessage", [["status": 403, "description": "Forbidden: bot was blocked by the user"],
                                              ["status": 400, "description": "Bad Request: chat not found"],
                                              ["status": 409], ["status": 502], ["drop": true]])
        var kinds: [BotAPIError.Kind] = []
        for _ in 0..<5 {
            if let error = await failure({ _ = try await bot.sendMessage(chat: 1, text: "x", retry: .once) }) { kinds.append(error.kind) }
        }
        #expect(kinds == [.forbidden, .badRequest, .conflict, .serverError, .network])
        let unauthorized = await failure { _ = try await client(fake, token: "123456:another-secret-token").getMe() }
        #expect(unauthorized?.kind == .unauthorized)
    }

    @Test func retriesTransientFailuresAndHonoursRetryAfter() async throws {
        let fake = try await FakeTelegram.start()
        let bot = client(fake)
        try await fake.script("sendMessage", [["status": 500], ["status": 429, "retry_after": 1]])
        let start = ContinuousClock.now
        _ = try await bot.sendMessage(chat: 1, text: "eventually", retry: .init(attempts: 3, maxFloodWait: .seconds(5), baseDelay: .milliseconds(10)))
        #expect(ContinuousClock.now - start >= .seconds(1), "waited the retry_after")
        #expect(try await fake.calls("sendMessage").count == 3)

        // A wait longer than the policy allows is not waited out: the 429 comes back.
        try await fake.script("sendMessage", [["status": 429, "retry_after": 120]])
        let quick = ContinuousClock.now
        let refused = await failure { _ = try await bot.sendMessage(chat: 1, text: "x", retry: .reply) }
        #expect(refused?.kind == .rateLimited && refused?.retryAfter == .seconds(120))
        #expect(ContinuousClock.now - quick < .seconds(5))
        #expect(refused?.isTransient == true)
    }

    @Test func errorsNeverCarryTheToken() async throws {
        let fake = try await FakeTelegram.start()
        let secret = String(fake.token.split(separator: ":")[1])
        let closedPort = try RedisServer.freePort()
        let unreachable = BotAPI(token: fake.token, apiURL: "http://127.0.0.1:\(closedPort)", requestTimeout: .seconds(5))
        let error = await failure { _ = try await unreachable.getMe() }
        #expect(error?.kind == .network)
        #expect(error.map { !"\($0)".contains(secret) && "\($0)".contains("bot<redacted>") } == true, "\(String(describing: error))")
        // A description that echoes the token (a misbehaving proxy) is scrubbed too.
        try await fake.script("getMe", [["status": 502, "description": "upstream /bot\(fake.token)/getMe failed"]])
        let echoed = await failure { _ = try await client(fake).getMe() }
        #expect(echoed.map { !"\($0)".contains(secret) } == true, "\(String(describing: echoed))")
    }
}
