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

    /// Answers in the shapes real LLMs give, and exactly what each becomes; nil is a rejected
    /// answer (the enhancer then uses the user's own prompt).
    @Test(arguments: [
        // A label inside quotes (issue 12).
        ("\"Enhanced prompt: a vivid, detailed scene, cinematic light\"", "a vivid, detailed scene, cinematic light"),
        // Lead-ins, on the prompt's line or on their own.
        ("Sure! Here's an enhanced prompt: a red fox curled up in fresh snow, soft morning light",
         "a red fox curled up in fresh snow, soft morning light"),
        ("Sure! Here's an enhanced version of your prompt:\n\n**\"A red fox curled up in fresh snow at dawn, soft golden light\"**\n\n"
            + "This prompt emphasizes the warm light against the cold snow.",
         "A red fox curled up in fresh snow at dawn, soft golden light"),
        ("Certainly! Here is a more vivid version.\n\nA red fox curled up in fresh snow at dawn, soft golden light",
         "A red fox curled up in fresh snow at dawn, soft golden light"),
        ("Okay, here it is:\nA misty pine forest at dawn, volumetric light rays\nThis version adds atmosphere and a light source.",
         "A misty pine forest at dawn, volumetric light rays"),
        ("Sure, here's a close-up: an old fisherman's face, Rembrandt lighting", "an old fisherman's face, Rembrandt lighting"),
        // Markdown: bold labels, headings, block quotes, code fences, italics.
        ("**Enhanced Prompt:**\n\"A lighthouse on a cliff during a storm, dramatic waves, moody teal palette\"",
         "A lighthouse on a cliff during a storm, dramatic waves, moody teal palette"),
        ("### Enhanced Prompt\n\nA lighthouse on a cliff during a storm, dramatic waves", "A lighthouse on a cliff during a storm, dramatic waves"),
        ("> **Prompt:** A misty pine forest at dawn, volumetric light rays", "A misty pine forest at dawn, volumetric light rays"),
        ("Here's your prompt:\n\n```\nA lighthouse on a cliff during a storm, dramatic waves\n```\n\n"
            + "Note: you can add an artist's name for a specific style.",
         "A lighthouse on a cliff during a storm, dramatic waves"),
        ("*A misty pine forest at dawn, volumetric light rays*", "A misty pine forest at dawn, volumetric light rays"),
        ("Improved prompt — A misty pine forest at dawn, volumetric light rays", "A misty pine forest at dawn, volumetric light rays"),
        ("Enhanced prompt (cinematic): A misty pine forest at dawn", "A misty pine forest at dawn"),
        // Lists: the first option.
        ("Here are three options:\n\n1. **Cinematic:** A lighthouse in a storm, dramatic waves\n"
            + "2. **Watercolor:** A soft watercolor lighthouse at dusk\n3. **Minimal:** A lone lighthouse, flat colors",
         "A lighthouse in a storm, dramatic waves"),
        ("1) A lighthouse on a cliff during a storm\n2) A lighthouse at dawn", "A lighthouse on a cliff during a storm"),
        ("**Option 1 – Cinematic:** A lighthouse in a storm, dramatic waves\n\n**Option 2 – Dreamy:** A lighthouse in fog",
         "A lighthouse in a storm, dramatic waves"),
        ("- \"A cozy reading nook with a cat asleep on a stack of books, warm lamplight\"",
         "A cozy reading nook with a cat asleep on a stack of books, warm lamplight"),
        // Quotes of every kind; apostrophes stay.
        ("'A cozy reading nook with a sleeping cat, warm lamplight'", "A cozy reading nook with a sleeping cat, warm lamplight"),
        ("‘A cozy reading nook, the cat’s tail over the book’s edge’", "A cozy reading nook, the cat’s tail over the book’s edge"),
        ("«Un renard roux dans la neige fraîche, lumière dorée du matin»", "Un renard roux dans la neige fraîche, lumière dorée du matin"),
        ("„Ein roter Fuchs im frischen Schnee, goldenes Morgenlicht“", "Ein roter Fuchs im frischen Schnee, goldenes Morgenlicht"),
        ("`a neon-lit alley in Tokyo at night, rain reflections`", "a neon-lit alley in Tokyo at night, rain reflections"),
        ("「雪の中の赤い狐、朝の柔らかな光」", "雪の中の赤い狐、朝の柔らかな光"),
        // Quotes and labels nested.
        ("\"Enhanced prompt: “A neon-lit alley in Tokyo at night, rain reflections”\"", "A neon-lit alley in Tokyo at night, rain reflections"),
        ("\"Prompt: 'A neon-lit alley in Tokyo at night, rain reflections'\"", "A neon-lit alley in Tokyo at night, rain reflections"),
        ("**\"Enhanced prompt: \"A neon-lit alley in Tokyo at night\"\"**", "A neon-lit alley in Tokyo at night"),
        ("Enhanced prompt: \"A neon-lit alley in Tokyo at night\"\n\nNote: The rain adds depth and reflections.",
         "A neon-lit alley in Tokyo at night"),
        // Quotes that do not wrap the whole prompt stay.
        ("\"Hope\" on a brick wall beside a door marked \"Love\"", "\"Hope\" on a brick wall beside a door marked \"Love\""),
        ("A child's drawing of a rocket, crayon on paper", "A child's drawing of a rocket, crayon on paper"),
        ("Close-up portrait of an old fisherman - weathered skin, Rembrandt lighting",
         "Close-up portrait of an old fisherman - weathered skin, Rembrandt lighting"),
        // A reasoning model's thoughts come first.
        ("<think>The user wants a fox. I should add lighting.</think>\n\nA red fox in fresh snow, golden hour light",
         "A red fox in fresh snow, golden hour light"),
        // Refusals and empty answers are rejected.
        ("I'm sorry, but I can't help with that request.", nil),
        ("I’m sorry, but I can’t create content that depicts real people in that way.", nil),
        ("I cannot assist with that. If you'd like, here is a different idea:\n\nA peaceful mountain lake at sunrise", nil),
        ("\"I'm unable to help with this prompt.\"", nil),
        ("As an AI language model, I can't generate that prompt.", nil),
        ("Sure! Here's an enhanced prompt:", nil),
        ("**Enhanced prompt:** \"\"", nil),
    ] as [(String, String?)])
    func cleansARealAnswer(_ answer: String, _ expected: String?) {
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
