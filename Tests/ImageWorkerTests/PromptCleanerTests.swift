import ImageWorker
import Testing

/// What an LLM answers versus the image prompt that is kept.
struct PromptCleanerTests {
    @Test(arguments: [
        ("Enhanced prompt: a fox in the snow", "a fox in the snow"),
        ("IMPROVED PROMPT - a fox in the snow", "a fox in the snow"),
        ("Prompt = a fox in the snow", "a fox in the snow"),
        ("\"a fox in the snow\"", "a fox in the snow"),
        ("“a fox in the snow”", "a fox in the snow"),
        ("«a fox in the snow»", "a fox in the snow"),
        ("Enhanced prompt: “a fox in the snow”", "a fox in the snow"),
        ("**a fox** in the __snow__", "a fox in the snow"),
        ("**Enhanced prompt:** a fox in the snow", "a fox in the snow"),
        ("## a fox in the snow", "a fox in the snow"),
        ("- a fox in the snow", "a fox in the snow"),
        ("```\na fox in the snow\n```", "a fox in the snow"),
        ("```text\n\"a fox in the snow\"\n```", "a fox in the snow"),
        ("Here is the prompt:\na fox in the snow", "a fox in the snow"),
        ("Here is an enhanced prompt:\n\n\"a fox in the snow\"\n\nIt adds detail.", "a fox in the snow"),
        ("  a fox in the snow  \n", "a fox in the snow"),
    ])
    func cleansAnAnswer(_ answer: String, _ expected: String) {
        #expect(PromptCleaner.clean(answer, maxLength: 1000) == expected)
    }

    @Test(arguments: ["", "   ", "\n\n", "```\n```", "```\n\n```", "\"\"", "“”", "!!!", "**", "42", "Enhanced prompt:"])
    func nothingUsableIsNil(_ answer: String) {
        #expect(PromptCleaner.clean(answer, maxLength: 1000) == nil)
    }

    @Test func aControlCharacterMakesTheAnswerUnusable() {
        #expect(PromptCleaner.clean("a fox\u{07} in the snow", maxLength: 1000) == nil)
    }

    @Test func longAnswersAreCutAtAWordBoundary() {
        let answer = "alpha beta gamma delta epsilon"
        #expect(PromptCleaner.clean(answer, maxLength: 13) == "alpha beta")
        #expect(PromptCleaner.clean(answer, maxLength: 16) == "alpha beta gamma")
        #expect(PromptCleaner.clean(answer, maxLength: 100) == answer)
        let cut = PromptCleaner.clean(String(repeating: "word ", count: 400), maxLength: 1000)
        #expect(cut.map { $0.count <= 1000 && !$0.hasSuffix(" ") && $0.hasSuffix("word") } == true)
        // One long word has no boundary: it is cut at the limit.
        #expect(PromptCleaner.clean(String(repeating: "x", count: 50), maxLength: 20) == String(repeating: "x", count: 20))
    }
}
