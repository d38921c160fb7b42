import ImageQueue
import Testing
import TelegramFront

/// The texts the bot sends.
@Suite struct RepliesTests {
    @Test func aGeneratingEventWithProgressShowsThePercentage() throws {
        let event = try StatusEvent(json: Array(#"{"v":1,"id":"flux-01abc","model":"flux","status":"generating","time":1,"attempt":1,"rev":3,"progress":0.456,"preview":true}"#.utf8))
        #expect(event.progress == 0.456 && event.hasPreview)
        #expect(Replies.status(event) == "🎨 Generating with flux… 45 %")
        let plain = try StatusEvent(json: Array(#"{"v":1,"id":"flux-01abc","model":"flux","status":"generating","time":1,"attempt":1,"rev":2}"#.utf8))
        #expect(plain.progress == nil && !plain.hasPreview)
        #expect(Replies.status(plain) == "🎨 Generating with flux…")
        let wild = try StatusEvent(json: Array(#"{"v":1,"id":"flux-01abc","model":"flux","status":"generating","time":1,"attempt":1,"rev":2,"progress":7}"#.utf8))
        #expect(wild.progress == 1)
    }

    @Test func aQueuedEventWithAnETAShowsTheExpectedWait() throws {
        let event = try StatusEvent(json: Array(#"{"v":1,"id":"flux-01abc","model":"flux","status":"queued","time":1,"attempt":0,"rev":1,"position":3,"eta_ms":41200}"#.utf8))
        #expect(event.etaMilliseconds == 41_200)
        #expect(Replies.status(event) == "⏳ Queued for flux: position 3, about 40 s.")
        // A fresher position scales the wait: 40 s at place 3 is 8 s at place 1.
        #expect(Replies.status(event, position: 1) == "⏳ Queued for flux: you are next, about 8 s.")
        #expect(Replies.status(event, position: 3) == "⏳ Queued for flux: position 3, about 40 s.")
        // Without run-time history there is no ETA, and the line is as before.
        let plain = try StatusEvent(json: Array(#"{"v":1,"id":"flux-01abc","model":"flux","status":"queued","time":1,"attempt":0,"rev":1,"position":3}"#.utf8))
        #expect(plain.etaMilliseconds == nil)
        #expect(Replies.status(plain) == "⏳ Queued for flux: position 3.")
        let long = try StatusEvent(json: Array(#"{"v":1,"id":"flux-01abc","model":"flux","status":"queued","time":1,"attempt":0,"rev":1,"position":12,"eta_ms":400000}"#.utf8))
        #expect(Replies.status(long) == "⏳ Queued for flux: position 12, about 7 min.")
    }

    @Test func expectedWaitsAreRoundedAsPeopleSayThem() {
        #expect(Replies.about(0) == nil && Replies.about(499) == nil, "a job that starts at once has no wait")
        #expect(Replies.about(500) == "about 1 s")
        #expect(Replies.about(7_400) == "about 7 s")
        #expect(Replies.about(10_000) == "about 10 s")
        #expect(Replies.about(12_000) == "about 10 s")
        #expect(Replies.about(13_000) == "about 15 s")
        #expect(Replies.about(90_000) == "about 90 s")
        #expect(Replies.about(91_000) == "about 2 min", "past 90 s, minutes")
        #expect(Replies.about(150_000) == "about 3 min")
        #expect(Replies.about(90 * 60_000) == "about 90 min")
        #expect(Replies.about(3 * 3_600_000) == "about 3 h")
        #expect(Replies.status(forQueued: "sdxl", position: nil, etaMilliseconds: 20_000) == "⏳ Queued for sdxl, about 20 s.")
    }

    @Test func usageShowsHowToAskForSeveralImages() {
        #expect(Replies.usage(models: ["flux", "sdxl"]).contains("/image=flux/x3 a lighthouse at dawn"))
    }

    @Test func captionKeepsShortPromptsWhole() {
        #expect(Replies.caption("  a fox in snow ") == "a fox in snow")
        let exact = String(repeating: "a", count: 1024)
        #expect(Replies.caption(exact) == exact)
    }

    @Test func captionCutsLongPromptsAtAWordWithinTelegramsLimit() {
        let words = Array(repeating: "lighthouse", count: 200).joined(separator: " ")
        let caption = Replies.caption(words)
        #expect(caption.utf16.count <= 1024)
        #expect(caption.hasSuffix("lighthouse…"))
        #expect(caption.utf16.count > 1000)
    }

    @Test func captionCountsUTF16UnitsAsTelegramDoes() {
        // Each emoji is 2 UTF-16 code units: 600 of them are 1200 units, over the limit.
        let emoji = String(repeating: "🌅", count: 600)
        let caption = Replies.caption(emoji)
        #expect(caption.utf16.count <= 1024)
        #expect(caption.hasSuffix("…"))
        #expect(caption.dropLast().allSatisfy { $0 == "🌅" })
    }

    @Test func usageNamesTheModelsAndTheProblem() {
        let text = Replies.usage(models: ["flux", "sdxl"], problem: "the model is missing")
        #expect(text.contains("the model is missing"))
        #expect(text.contains("/image=<model>/<prompt>"))
        #expect(text.contains("flux, sdxl"))
    }

    @Test func refusalsNameTheProblem() {
        let models = ["flux", "sdxl"]
        #expect(Replies.refusal(ImageQueueError(.unknownModel, "unknown"), models: models).contains("Choose one of: flux, sdxl"))
        #expect(Replies.refusal(ImageQueueError(.emptyPrompt, "empty"), models: models).contains("empty"))
        #expect(Replies.refusal(ImageQueueError(.promptTooLong, "the prompt has 2500 characters; the limit is 2000"), models: models)
            .contains("2500 characters"))
        var limited = ImageQueueError(.rateLimited, "too many")
        limited.retryAfter = .milliseconds(41_200)
        #expect(Replies.refusal(limited, models: models).contains("try again in 42 s"))
        for code in [ImageQueueError.Code.redisFull, .queueFull] {
            #expect(Replies.refusal(ImageQueueError(code, "Redis is out of memory"), models: models)
                    == "The queue is full right now, nothing was queued. Please try again later.")
        }
    }
}

/// Status lines made from events as they come out of Redis, including impossible ones.
@Suite struct RetryStatusLineTests {
    private func retrying(_ retry: String) throws -> StatusEvent {
        try StatusEvent(json: Array(#"{"v":1,"id":"flux-01j","model":"flux","status":"retrying","retry":\#(retry)}"#.utf8))
    }

    @Test func aRetryNamesTheNextTry() throws {
        #expect(Replies.status(try retrying(#"{"attempt":1,"of":3}"#)).contains("try 2 of 3"))
    }

    // Found in the fuzzing work (docs/FUZZING.md): `attempt + 1` trapped on the largest integer.
    @Test(arguments: [#"{"attempt":9223372036854775807,"of":3}"#, #"{"attempt":9223372036854775807,"of":9223372036854775807}"#,
                      #"{"attempt":3,"of":3}"#, #"{"attempt":-1,"of":3}"#])
    func anImpossibleCountGivesThePlainLine(retry: String) throws {
        #expect(Replies.status(try retrying(retry)) == "🔁 The image service had a hiccup; trying again…")
    }
}
