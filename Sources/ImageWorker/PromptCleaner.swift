/// Turns an LLM's answer into a usable image prompt: drops markdown, labels such as
/// "Enhanced prompt:", surrounding quotes and extra lines, then checks and truncates it.
public enum PromptCleaner {
    /// The cleaned prompt, or nil when nothing usable is left.
    public static func clean(_ answer: String, maxLength: Int) -> String? {
        var lines = answer.split(whereSeparator: \.isNewline).map { $0.trimmingWhitespace() }
        lines.removeAll { $0.isEmpty || $0.hasPrefix("```") }
        // Drop lead-in lines ("Here is an enhanced prompt:") when something follows them.
        while lines.count > 1, let first = lines.first, first.hasSuffix(":") { lines.removeFirst() }
        guard var text = lines.first else { return nil }

        text = stripMarkdown(text)
        text = stripLabel(text)
        text = stripQuotes(text)
        text = text.trimmingWhitespace()

        if text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) { return nil }
        guard text.count >= 3, text.contains(where: \.isLetter) else { return nil }
        return truncate(text, to: maxLength)
    }

    private static func stripMarkdown(_ text: String) -> String {
        var result = text
        while let first = result.first, first == "#" || first == ">" { result = result.dropFirst().trimmingWhitespace() }
        for bullet in ["- ", "* ", "• "] where result.hasPrefix(bullet) { result = String(result.dropFirst(bullet.count)) }
        for marker in ["**", "__", "`"] { result = result.replacingAll(marker, with: "") }
        return result
    }

    private static let labels = ["enhanced prompt", "improved prompt", "refined prompt", "new prompt", "prompt",
                                 "enhanced", "improved", "output", "answer", "result"]

    private static func stripLabel(_ text: String) -> String {
        let lower = text.lowercased()
        for label in labels where lower.hasPrefix(label) {
            let rest = text.dropFirst(label.count).trimmingWhitespace()
            if rest.hasPrefix(":") || rest.hasPrefix("-") || rest.hasPrefix("=") {
                return rest.dropFirst().trimmingWhitespace()
            }
        }
        return text
    }

    private static let quotePairs: [(Character, Character)] = [("\"", "\""), ("'", "'"), ("“", "”"), ("«", "»"), ("‘", "’"), ("`", "`")]

    private static func stripQuotes(_ text: String) -> String {
        var result = text.trimmingWhitespace()
        var changed = true
        while changed, result.count >= 2 {
            changed = false
            for (open, close) in quotePairs where result.first == open && result.last == close {
                result = String(result.dropFirst().dropLast()).trimmingWhitespace()
                changed = true
            }
        }
        return result
    }

    /// Cuts at the last word boundary within `maxLength` characters.
    static func truncate(_ text: String, to maxLength: Int) -> String {
        guard text.count > maxLength else { return text }
        // One character more than fits: a space there means the cut falls between words.
        let cut = text.prefix(maxLength + 1)
        if let space = cut.lastIndex(where: { $0 == " " }), cut.distance(from: cut.startIndex, to: space) > maxLength / 2 {
            return String(cut[..<space]).trimmingWhitespace()
        }
        return String(text.prefix(maxLength))
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
