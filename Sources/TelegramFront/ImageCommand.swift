import ImageQueue

/// What a message asks of the bot: the seed's `/image=<model>/<prompt>` command, where the
/// prompt may start with `x<n>` for several images (`/image=flux/x3 a fox`).
public enum ImageCommand: Sendable, Equatable {
    /// `/image=<model>/<prompt>`: model lowercased, prompt trimmed (still to be validated),
    /// and how many images (1 unless the prompt starts with `x2`, `x3`…).
    case generate(model: String, prompt: String, count: Int = 1)
    /// `/image`, `/start`, `/help`, or an `/image` command whose shape is wrong: answer
    /// with the usage text. `problem` says what was wrong, when something was.
    case usage(problem: String?)

    /// Reads a message's text. Returns nil for anything that is not addressed to this bot:
    /// ordinary text, other commands, or a command for another bot (`/image@other_bot`).
    /// - Parameter botUsername: this bot's @username (without @), so `/image@name=...`
    ///   works in groups.
    public static func parse(_ text: String, botUsername: String?) -> ImageCommand? {
        var rest = Substring(text.trimmingWhitespace())
        guard rest.first == "/" else { return nil }
        rest = rest.dropFirst()
        let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
        rest = rest.dropFirst(name.count)
        if rest.first == "@" {
            let mention = rest.dropFirst().prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            guard let botUsername, mention.lowercased() == botUsername.lowercased() else { return nil }
            rest = rest.dropFirst(1 + mention.count)
        }
        switch name.lowercased() {
        case "start", "help":
            return .usage(problem: nil)
        case "image":
            break
        default:
            return nil
        }
        if rest.isEmpty { return .usage(problem: nil) }
        if rest.first?.isWhitespace == true {
            return .usage(problem: "write the model and the prompt right after /image=, e.g. /image=flux/a fox")
        }
        guard rest.first == "=" else { return nil }  // `/imagefoo`-like text is not our command
        rest = rest.dropFirst()
        guard let slash = rest.firstIndex(of: "/") else {
            return .usage(problem: rest.trimmingWhitespace().isEmpty ? "the model is missing"
                                                                     : "put a / between the model and the prompt")
        }
        let model = rest[..<slash].trimmingWhitespace().lowercased()
        if model.isEmpty { return .usage(problem: "the model is missing") }
        let prompt = rest[rest.index(after: slash)...].trimmingWhitespace()
        guard let (count, rest) = imageCount(prompt) else { return .generate(model: model, prompt: prompt) }
        guard (1...JobRequest.maxImageCount).contains(count) else {
            return .usage(problem: "one request makes 1 to \(JobRequest.maxImageCount) images (x2 … x\(JobRequest.maxImageCount) before the prompt)")
        }
        return .generate(model: model, prompt: rest, count: count)
    }

    /// A prompt's leading `x<digits>` followed by white space (`x3 a fox`): the count and the
    /// prompt after it; nil when the prompt does not start so (the count is capped so that
    /// any digits parse).
    private static func imageCount(_ prompt: String) -> (Int, String)? {
        guard prompt.first == "x" || prompt.first == "X" else { return nil }
        let digits = prompt.dropFirst().prefix { $0.isASCII && $0.isNumber }
        let after = prompt.dropFirst(1 + digits.count)
        guard !digits.isEmpty, after.first?.isWhitespace == true else { return nil }
        return (Int(digits.prefix(3)) ?? 0, after.trimmingWhitespace())
    }
}
