import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What the bot answers to commands it does not queue, and how it refuses bad settings.
@Suite("telegram front: commands and settings", .serialized)
struct TelegramCommandTests {
    @Test("malformed commands get the usage, an unknown model or a bad prompt a friendly error; nothing is queued")
    func malformedAndUnknownCommands() async throws {
        let h = try await TelegramHarness.start()
        let front = try h.startFront("\(h.cli.prefix)-front", environment: ["IMAGEQUEUE_MAX_PROMPT_LENGTH": "40"])
        let commands = try await h.telegram.sendUpdates([
            "/image", "/image=flux", "/image flux a cat", "/image=dalle/a cat", "/image=flux/   ",
            "/image=sdxl/" + String(repeating: "long ", count: 20), "/image=flux/a bell\u{07}",
            "hello there", "/image@other_bot=flux/a cat", "/start",
        ])
        let answered = Array(commands[0..<7]) + [commands[9]]
        try await h.waitForMessages("eight answers") { $0.count >= 8 }
        try await h.telegram.waitFor("every update confirmed") { [h] in
            (try await h.telegram.state()["pending_updates"] as? NSNumber)?.intValue == 0
        }
        try await Task.sleep(for: .milliseconds(500))  // room for a wrong extra answer to show up
        await h.stop(front)
        let messages = try await h.messages()
        #expect(messages.count == 8, "\(messages)")
        func answer(_ index: Int) -> String {
            messages.first { $0.replyTo == answered[index].messageID }?.text ?? "<no answer>"
        }
        #expect(answer(0).hasPrefix("Usage: /image=<model>/<prompt>\nModels: flux, sdxl"))
        #expect(answer(1).contains("put a / between the model and the prompt") && answer(1).contains("Usage:"))
        #expect(answer(2).contains("right after /image="))
        #expect(answer(3).hasPrefix("Unknown model. Choose one of: flux, sdxl."))
        #expect(answer(4).hasPrefix("The prompt is empty."))
        #expect(answer(5).contains("the limit is 40"), "\(answer(5))")
        #expect(answer(6).contains("characters that cannot be used"))
        #expect(answer(7).hasPrefix("Usage:"))
        #expect(!messages.contains { [commands[7].messageID, commands[8].messageID].contains($0.replyTo ?? -1) },
                "ordinary text and other bots' commands get no answer")
        let queues = try await h.cli.json(["queues", "--json"])
        #expect(queues["flux"]?["pending"]?.integer == 0 && queues["sdxl"]?["pending"]?.integer == 0, "\(queues)")
    }

    @Test("the per-user rate limit answers with when to try again; other users are not held up")
    func rateLimit() async throws {
        let h = try await TelegramHarness.start()
        let front = try h.startFront("\(h.cli.prefix)-front", environment: ["IMAGEQUEUE_RATE_LIMIT": "2/60"])
        let first = try await h.telegram.sendUpdates(["/image=flux/one", "/image=flux/two", "/image=flux/three"], userID: 42)
        let other = try await h.telegram.sendUpdate(text: "/image=flux/someone else", userID: 43)
        try await h.waitForMessages("four answers") { $0.count >= 4 }
        await h.stop(front)
        let messages = try await h.messages()
        let refusal = try #require(messages.first { $0.replyTo == first[2].messageID }, "\(messages)")
        let text = try #require(refusal.text)
        #expect(text.hasPrefix("You have made too many requests. Please try again in "), "\(text)")
        let seconds = Int(text.split(separator: " ").dropLast().last ?? "") ?? 0
        #expect((50...60).contains(seconds), "the wait is the window's rest: \(text)")
        for accepted in [first[0], first[1], other] {
            #expect(messages.first { $0.replyTo == accepted.messageID }?.text?.hasPrefix("⏳ Queued for flux") == true, "\(messages)")
        }
        let queues = try await h.cli.json(["queues", "--json"])
        #expect(queues["flux"]?["pending"]?.integer == 3, "\(queues)")
    }

    @Test("a Redis at maxmemory: the bot answers once that the queue is full, moves past the update, and queues nothing")
    func fullRedis() async throws {
        let server = try await RedisServer.launch(extraArguments: ["--maxmemory-policy", "noeviction"])
        let h = try await TelegramHarness.start(redisURL: server.url)
        let front = try h.startFront("\(h.cli.prefix)-front")
        // The front takes its poller lease (a plain SET) before Redis fills.
        try await h.telegram.waitFor("the front holds the lease") { [h] in
            try await h.cli.runRedis(["EXISTS", "\(h.cli.prefix):telegram:{123456}:lease"]) == "1"
        }
        // Full: maxmemory below what Redis uses, so every write that needs memory is refused.
        #expect(try await h.cli.runRedis(["CONFIG", "SET", "maxmemory", "1"]) == "OK")
        let command = try await h.telegram.sendUpdate(text: "/image=flux/a lighthouse in a full queue")
        try await h.waitForMessages("an answer") { $0.count >= 1 }
        try await h.telegram.waitFor("the update confirmed") { [h] in
            (try await h.telegram.state()["pending_updates"] as? NSNumber)?.intValue == 0
        }
        await h.stop(front)
        let messages = try await h.messages()
        #expect(messages.count == 1, "answered once, not again and again: \(messages)")
        #expect(messages.first?.replyTo == command.messageID, "\(messages)")
        #expect(messages.first?.text == "The queue is full right now, nothing was queued. Please try again later.", "\(messages)")
        #expect(try await h.cli.json(["queues", "--json"])["flux"]?["pending"]?.integer == 0)
    }

    @Test("TELEGRAM_ALLOWED_IDS: others get a short refusal and queue nothing")
    func allowList() async throws {
        let h = try await TelegramHarness.start()
        let front = try h.startFront("\(h.cli.prefix)-front", environment: ["TELEGRAM_ALLOWED_IDS": "42, -100500"])
        let stranger = try await h.telegram.sendUpdate(text: "/image=flux/not for you", userID: 7)
        let friend = try await h.telegram.sendUpdate(text: "/image=flux/for a friend", userID: 42)
        let group = try await h.telegram.sendUpdate(text: "/image=flux/for the group", userID: 8, chatID: -100500)
        try await h.waitForMessages("three answers") { $0.count >= 3 }
        await h.stop(front)
        let messages = try await h.messages()
        #expect(messages.first { $0.replyTo == stranger.messageID }?.text == "Sorry, this bot only serves the people it was set up for.")
        #expect(messages.first { $0.replyTo == friend.messageID }?.text?.hasPrefix("⏳ Queued") == true)
        #expect(messages.first { $0.replyTo == group.messageID }?.text?.hasPrefix("⏳ Queued") == true, "an allowed chat admits its members")
        let queues = try await h.cli.json(["queues", "--json"])
        #expect(queues["flux"]?["pending"]?.integer == 2)
    }

    @Test("a missing, malformed or refused token stops the front with one clear line, and never prints the token")
    func badTokens() async throws {
        let h = try await TelegramHarness.start()
        let wrong = "123456:WRONG-secret-zyxwvutsrqponmlkjihgfedcba"
        let cases: [([String: String], String)] = [
            (["TELEGRAM_BOT_TOKEN": ""], "TELEGRAM_BOT_TOKEN is not set"),
            (["TELEGRAM_BOT_TOKEN": "not-a-token-secretvalue"], "does not look like a bot token"),
            (["TELEGRAM_BOT_TOKEN": wrong], "the Bot API refused TELEGRAM_BOT_TOKEN (401 Unauthorized)"),
            (["TELEGRAM_ALLOWED_IDS": "42,alice"], "TELEGRAM_ALLOWED_IDS holds 'alice'"),
            (["TELEGRAM_API_URL": "ftp://example.invalid"], "TELEGRAM_API_URL must be an http:// or https:// URL"),
        ]
        for (environment, message) in cases {
            let result = try await h.cli.run(["telegram", "--poll-timeout", "1"],
                                             environment: h.telegram.environment().merging(environment) { $1 }, timeout: 30)
            #expect(result.status == 2, "\(environment): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(result.stderr)")
            #expect(!result.stderr.contains("secretvalue") && !result.stderr.contains("WRONG-secret"), "\(result.stderr)")
            #expect(!(result.stdout + result.stderr).contains(h.tokenSecret))
        }
        let usage = try await h.cli.run(["telegram", "--lease-seconds", "0"], environment: h.telegram.environment())
        #expect(usage.status == 2 && usage.stderr.contains("--lease-seconds"), "\(usage.stderr)")
    }

    @Test("an unreachable Bot API is retried, not fatal, and the errors printed name no token")
    func unreachableBotAPI() async throws {
        let h = try await TelegramHarness.start()
        let closedPort = try RedisServer.freePort()
        let front = try h.startFront("\(h.cli.prefix)-front", environment: ["TELEGRAM_API_URL": "http://127.0.0.1:\(closedPort)"])
        let retried = await front.waitForOutput(containing: "cannot reach the Bot API; trying again", timeout: 20)
        try await Task.sleep(for: .seconds(1))
        #expect(retried, "\(front.output)")
        #expect(front.isRunning, "\(front.output)")
        await h.stop(front)
        #expect(front.termination == .exited(0), "\(front.output)")
        #expect(!front.output.contains(h.tokenSecret), "\(front.output)")
        #expect(front.output.contains("bot<redacted>"), "the failing URL is shown without its token: \(front.output)")
    }

    @Test("getUpdates: a 429 waits its retry_after; a token revoked while running stops the front with exit 2")
    func pollingFailures() async throws {
        let h = try await TelegramHarness.start()
        let front = try h.startFront("\(h.cli.prefix)-front")
        try await h.telegram.waitUntilPolling()
        try await h.telegram.script("getUpdates", [["status": 429, "retry_after": 2], ["status": 401]])
        try await h.telegram.sendUpdate(text: "/start")  // ends the waiting poll; the next ones meet the script
        let ended = try await front.waitForExit(timeout: 30)
        #expect(ended == .exited(2), "\(front.output)")
        #expect(front.stderr.contains("the Bot API refused TELEGRAM_BOT_TOKEN (401 Unauthorized)"), "\(front.output)")
        #expect(!front.output.contains(h.tokenSecret))
        let polls = try await h.telegram.calls("getUpdates")
        let limited = try #require(polls.firstIndex { ($0["status"] as? NSNumber)?.intValue == 429 }, "\(polls)")
        try #require(limited + 1 < polls.count, "\(polls)")
        let refusedAt = (polls[limited]["end_ms"] as? NSNumber)?.int64Value ?? 0
        let nextAt = (polls[limited + 1]["time_ms"] as? NSNumber)?.int64Value ?? 0
        #expect(nextAt - refusedAt >= 1950, "waited retry_after (2 s), not \(nextAt - refusedAt) ms")
        #expect(try await h.cli.runRedis(["EXISTS", "\(h.cli.prefix):telegram:{123456}:lease"]) == "0", "the lease was given up")
    }
}
