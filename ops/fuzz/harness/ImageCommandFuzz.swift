// Fuzz target `image-command`: a Telegram message's text through everything the front does
// with it before Redis: `ImageCommand.parse`, `JobRequest.validate`, and the texts that
// answer it (`Replies.usage`, `Replies.refusal`, `Replies.caption`). The same text is also
// read as an LLM's answer by `PromptCleaner.clean`, which makes the prompt the caption shows.
//
// Input: `<message text>` or `<message text> NUL <bot username>`; without a NUL the bot
// is `imagequeue_bot`. Besides crashes it checks what the parser promises.
import ImageQueue
import ImageWorker
import TelegramFront

private let configuration = QueueConfiguration()

@_cdecl("LLVMFuzzerTestOneInput")
public func imageCommandFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let text: String
    let botUsername: String?
    if let nul = bytes.firstIndex(of: 0) {
        text = String(decoding: bytes[..<nul], as: UTF8.self)
        let name = bytes[(nul + 1)...]
        botUsername = name.isEmpty ? nil : String(decoding: name, as: UTF8.self)
    } else {
        text = String(decoding: bytes, as: UTF8.self)
        botUsername = "imagequeue_bot"
    }

    switch ImageCommand.parse(text, botUsername: botUsername) {
    case nil:
        break
    case .usage(let problem):
        precondition(text.trimmingWhitespace().hasPrefix("/"), "usage for text that is not a command")
        _ = Replies.usage(models: configuration.models, problem: problem)
    case .generate(let model, let prompt):
        precondition(text.trimmingWhitespace().hasPrefix("/"), "a command from text that is not one")
        precondition(!model.isEmpty && model == model.lowercased() && model == model.trimmingWhitespace(),
                     "model not lowercased and trimmed: \(model.debugDescription)")
        precondition(prompt == prompt.trimmingWhitespace(), "prompt not trimmed")
        let request = JobRequest(model: model, prompt: prompt, user: "tg:42", metadata: ["chat": "42"])
        do {
            try request.validate(against: configuration)
            let caption = Replies.caption(prompt)
            precondition(caption.utf16.count <= Replies.captionLimit, "caption over Telegram's limit")
        } catch {
            precondition(error.isValidation, "validation failed with a non-validation code \(error.code)")
            _ = Replies.refusal(error, models: configuration.models)
        }
    }

    // The caption on its own, with a limit small enough for short inputs to be cut.
    let limit = 1 + (size % 64)
    let caption = Replies.caption(text, limit: limit)
    precondition(caption.utf16.count <= limit, "caption of \(caption.utf16.count) units over a limit of \(limit)")
    if text.trimmingWhitespace().utf16.count <= limit {
        precondition(caption == text.trimmingWhitespace(), "a caption that fits was changed")
    }
    // The same text as an enhancer's answer, with a length limit that short inputs can reach.
    let maxLength = 20 + (size % 200)
    if let cleaned = PromptCleaner.clean(text, maxLength: maxLength) {
        precondition(cleaned.count <= maxLength, "a cleaned prompt of \(cleaned.count) characters over \(maxLength)")
        precondition(!cleaned.unicodeScalars.contains { $0.properties.generalCategory == .control }, "a control character kept")
        precondition(!cleaned.contains("\n") && !cleaned.contains("\r"), "more than one line kept")
    }
    return 0
}
