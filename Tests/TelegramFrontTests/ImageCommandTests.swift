import Testing
import TelegramFront

/// The seed's `/image=<model>/<prompt>` command, read from a message's text.
@Suite struct ImageCommandTests {
    func parse(_ text: String) -> ImageCommand? { ImageCommand.parse(text, botUsername: "iq_test_bot") }

    @Test func readsModelAndPrompt() {
        #expect(parse("/image=flux/a lighthouse at dawn") == .generate(model: "flux", prompt: "a lighthouse at dawn"))
        #expect(parse("  /image=SDXL/  a fox / in snow  ") == .generate(model: "sdxl", prompt: "a fox / in snow"))
        #expect(parse("/image= flux /multi\nline") == .generate(model: "flux", prompt: "multi\nline"))
        #expect(parse("/image@iq_test_bot=flux/x") == .generate(model: "flux", prompt: "x"))
        #expect(parse("/image@IQ_Test_Bot=flux/x") == .generate(model: "flux", prompt: "x"))
    }

    @Test func keepsAnEmptyPromptOrUnknownModelForTheQueueToRefuse() {
        #expect(parse("/image=flux/") == .generate(model: "flux", prompt: ""))
        #expect(parse("/image=flux/   ") == .generate(model: "flux", prompt: ""))
        #expect(parse("/image=dalle/a cat") == .generate(model: "dalle", prompt: "a cat"))
    }

    @Test func readsTheImageCountBeforeThePrompt() {
        #expect(parse("/image=flux/x3 a lighthouse") == .generate(model: "flux", prompt: "a lighthouse", count: 3))
        #expect(parse("/image=flux/X2   two foxes") == .generate(model: "flux", prompt: "two foxes", count: 2))
        #expect(parse("/image=flux/x1 one fox") == .generate(model: "flux", prompt: "one fox", count: 1))
        #expect(parse("/image=flux/x4\nfour") == .generate(model: "flux", prompt: "four", count: 4))
        // Without the count, one image, and prompts that merely start with x are prompts.
        #expect(parse("/image=flux/a lighthouse") == .generate(model: "flux", prompt: "a lighthouse", count: 1))
        #expect(parse("/image=flux/xray of a fox") == .generate(model: "flux", prompt: "xray of a fox"))
        #expect(parse("/image=flux/x3") == .generate(model: "flux", prompt: "x3"))
        #expect(parse("/image=flux/x3d render") == .generate(model: "flux", prompt: "x3d render"))
        for text in ["/image=flux/x5 five", "/image=flux/x0 none", "/image=flux/x99999999999999999999 many"] {
            guard case .usage(let problem)? = parse(text) else {
                Issue.record("\(text): a count out of range is answered with the usage")
                continue
            }
            #expect(problem?.contains("1 to 4 images") == true, "\(text): \(problem ?? "")")
        }
    }

    @Test func answersUsageForBareOrMalformedCommands() {
        #expect(parse("/image") == .usage(problem: nil))
        #expect(parse("/start") == .usage(problem: nil))
        #expect(parse("/help") == .usage(problem: nil))
        #expect(parse("/image@iq_test_bot") == .usage(problem: nil))
        #expect(parse("/image=flux") == .usage(problem: "put a / between the model and the prompt"))
        #expect(parse("/image=") == .usage(problem: "the model is missing"))
        #expect(parse("/image=/a cat") == .usage(problem: "the model is missing"))
        guard case .usage(let problem)? = parse("/image flux a cat") else {
            Issue.record("a space instead of = is answered with the usage")
            return
        }
        #expect(problem?.contains("/image=") == true)
    }

    @Test func ignoresWhatIsNotAddressedToThisBot() {
        #expect(parse("hello there") == nil)
        #expect(parse("") == nil)
        #expect(parse("/imagine=flux/x") == nil)
        #expect(parse("/images") == nil)
        #expect(parse("/settings") == nil)
        #expect(parse("/image@other_bot=flux/x") == nil)
        #expect(parse("please /image=flux/x") == nil)
        #expect(ImageCommand.parse("/image@iq_test_bot=flux/x", botUsername: nil) == nil)
    }
}
