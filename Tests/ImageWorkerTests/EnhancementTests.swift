import Foundation
import ImageQueue
import Testing
import TestSupport

/// Prompt enhancement through the fake OpenRouter and Gemini: the cleaned answer is what the
/// image service gets; any failure falls back to the user's own prompt and says why.
@Suite(.timeLimit(.minutes(1)), .runsClients)
struct EnhancementTests {
    static let userPrompt = "a red fox in the snow"

    /// The `generating` event that carries the enhancement detail.
    static func enhancementEvent(_ fixture: WorkerFixture, _ id: String) throws -> StatusEvent {
        try #require(fixture.events.events(of: id).first { $0.status == .generating && $0.fields["enhancement"] != nil })
    }

    @Test func openRouterEnhancesThePromptTheImageServiceReceives() async throws {
        let fixture = try await WorkerFixture.make(llm: "openrouter")
        defer { fixture.close() }
        try await fixture.fake.script("openrouter", [["content": #"Enhanced prompt: "a red fox in fresh snow, golden hour, 35mm""#]])
        let enhanced = "a red fox in fresh snow, golden hour, 35mm"
        let info = try await fixture.withWorkers { _ in
            try await fixture.waitForEnd(try await fixture.enqueue(Self.userPrompt, model: "flux"))
        }
        #expect(info.status == .completed)
        #expect(info.enhancedPrompt == enhanced)
        #expect(try await fixture.requests("flux").map(\.prompt) == [enhanced])

        let event = try Self.enhancementEvent(fixture, info.id)
        #expect(event.enhancedPrompt == enhanced)
        let detail = try #require(event.fields["enhancement"]?.objectValue)
        #expect(detail["provider"]?.stringValue == "openrouter")
        #expect(detail["fallback"] == .bool(false))
        #expect(detail["reason"] == nil)

        let calls = try await fixture.requests("openrouter")
        try #require(calls.count == 1)
        #expect(calls[0].headers["authorization"] == "Bearer openrouter-test-key")
        #expect(calls[0].prompt == Self.userPrompt)
        let body = try JSONSerialization.jsonObject(with: Data(calls[0].body.utf8)) as? [String: Any]
        #expect(body?["model"] as? String == fixture.configuration.openRouterModel)
    }

    @Test func geminiEnhancesWithTheKeyInAHeaderAndNeverInTheURL() async throws {
        let fixture = try await WorkerFixture.make(llm: "gemini")
        defer { fixture.close() }
        try await fixture.fake.script("gemini", [["content": "**Refined prompt:** “a red fox in fresh snow, cinematic lighting”"]])
        let enhanced = "a red fox in fresh snow, cinematic lighting"
        let info = try await fixture.withWorkers { _ in
            try await fixture.waitForEnd(try await fixture.enqueue(Self.userPrompt, model: "sdxl"))
        }
        #expect(info.status == .completed)
        #expect(info.enhancedPrompt == enhanced)
        #expect(try await fixture.requests("sdxl").map(\.prompt) == [enhanced])
        let event = try Self.enhancementEvent(fixture, info.id)
        #expect(event.enhancedPrompt == enhanced)
        #expect(event.fields["enhancement"]?.objectValue?["provider"]?.stringValue == "gemini")
        #expect(event.fields["enhancement"]?.objectValue?["fallback"] == .bool(false))

        let calls = try await fixture.requests("gemini")
        try #require(calls.count == 1)
        #expect(calls[0].headers["x-goog-api-key"] == "gemini-test-key")
        #expect(calls[0].path == "/gemini/v1beta/models/\(fixture.configuration.geminiModel):generateContent")
        #expect(!calls[0].query.contains("gemini-test-key") && !calls[0].path.contains("gemini-test-key"))
        #expect(!calls[0].query.contains("key="))
        #expect(calls[0].prompt?.contains(Self.userPrompt) == true)
    }

    /// Ways an LLM can let the worker down.
    enum Failure: String, CaseIterable, Sendable {
        case openRouterError, geminiError, slowerThanTheTimeout, emptyAnswer, emptyCodeFence, refusal

        var provider: String { self == .geminiError ? "gemini" : "openrouter" }
        var script: [String: Any] {
            switch self {
            case .openRouterError, .geminiError: ["status": 500]
            case .slowerThanTheTimeout: ["delay_ms": 60_000]
            case .emptyAnswer: ["content": ""]
            case .emptyCodeFence: ["content": "```\n```"]
            case .refusal: ["content": "I'm sorry, but I can't help with that request."]
            }
        }
        var reasonFragment: String {
            switch self {
            case .openRouterError, .geminiError: "HTTP 500"
            case .slowerThanTheTimeout: "did not answer within 1 s"
            case .emptyAnswer, .emptyCodeFence, .refusal: "empty or unusable"
            }
        }
    }

    @Test(arguments: Failure.allCases)
    func aFailedEnhancementFallsBackToTheOriginalPrompt(_ failure: Failure) async throws {
        let fixture = try await WorkerFixture.make(environment: ["IMAGEQUEUE_ENHANCE_TIMEOUT": "1"], llm: failure.provider)
        defer { fixture.close() }
        try await fixture.fake.script(failure.provider, [failure.script])
        let info = try await fixture.withWorkers { _ in
            try await fixture.waitForEnd(try await fixture.enqueue(Self.userPrompt, model: "flux"))
        }
        #expect(info.status == .completed)
        let generated = try await fixture.requests("flux")
        #expect(generated.map(\.prompt) == [Self.userPrompt])

        let detail = try #require(try Self.enhancementEvent(fixture, info.id).fields["enhancement"]?.objectValue)
        #expect(detail["fallback"] == .bool(true))
        #expect(detail["provider"]?.stringValue == failure.provider)
        let reason = try #require(detail["reason"]?.stringValue)
        #expect(reason.contains(failure.reasonFragment), "reason: \(reason)")

        let calls = try await fixture.requests(failure.provider)
        #expect(calls.count == 1)
        if failure == .slowerThanTheTimeout, let call = calls.first, let image = generated.first {
            // The worker gave up on the LLM after its 1 s timeout, not after the fake's 60 s
            // (the margin is wide enough for a loaded machine).
            #expect(image.timeMilliseconds - call.timeMilliseconds < 30_000)
        }
    }

    @Test func aJobWithoutEnhancementNeverCallsTheLLM() async throws {
        let fixture = try await WorkerFixture.make(llm: "openrouter")
        defer { fixture.close() }
        let info = try await fixture.withWorkers { _ in
            try await fixture.waitForEnd(try await fixture.enqueue(Self.userPrompt, model: "flux", enhance: false))
        }
        #expect(info.status == .completed)
        #expect(info.enhance == false)
        #expect(try await fixture.requests("openrouter").isEmpty)
        #expect(try await fixture.requests("flux").map(\.prompt) == [Self.userPrompt])
        #expect(!fixture.events.events(of: info.id).contains { $0.fields["enhancement"] != nil })
    }
}
