/// Turns an LLM's answer into a usable image prompt: drops reasoning, lead-ins such as
/// "Sure! Here's an enhanced prompt:", markdown, list markers, labels, quotes and the
/// explanations that follow, then checks and truncates it. A refusal is unusable.
public enum PromptCleaner {
    /// The cleaned prompt, or nil when nothing usable is left (then the enhancer uses the
    /// user's own prompt).
    public static func clean(_ answer: String, maxLength: Int) -> String? {
        // 1. A reasoning model's "<think>…</think>" comes before the answer.
        var answer = answer[...]
        if let end = answer.ranges(of: "</think>").last { answer = answer[end.upperBound...] }

        // 2. Lines, without blank lines and code fences.
        var lines = answer.split(whereSeparator: \.isNewline).map { $0.trimmingWhitespace() }
        lines.removeAll { $0.isEmpty || $0.hasPrefix("```") }
        guard let firstLine = lines.first, !isRefusal(firstLine) else { return nil }

        // 3. Lead-in lines ("Sure!", "Here is an enhanced prompt:", "**Enhanced prompt**")
        //    go when something follows them. The prompt is then the first line: what
        //    follows it is a second option or an explanation.
        while lines.count > 1, isLeadIn(lines[0]) { lines.removeFirst() }

        // 4. Markdown, quotes and labels, peeled until nothing changes, since they nest:
        //    `**"Enhanced prompt: “a fox”"**`.
        var text = lines[0]
        while true {
            let before = text
            text = stripLabel(stripQuotes(stripMarkdown(text)))
            if text == before { break }
        }

        // 5. What is left must look like a prompt.
        if isRefusal(text) { return nil }
        if text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) { return nil }
        guard text.count >= 3, text.contains(where: \.isLetter) else { return nil }
        return truncate(text, to: maxLength)
    }

    // MARK: Lead-ins and refusals

    /// Words that open a lead-in sentence: "Sure! Here's…", "Certainly.", "Okay, here is…".
    private static let leadInOpeners = ["sure", "certainly", "of course", "absolutely", "okay", "ok", "alright",
                                        "great", "here", "here's", "below"]

    /// How refusals begin.
    private static let refusalOpeners = ["i'm sorry", "i am sorry", "sorry,", "sorry but", "i apologize", "i can't",
                                         "i cannot", "i can not", "i won't", "i will not", "i'm unable", "i am unable",
                                         "i'm not able", "i am not able", "i must decline", "i'm afraid i",
                                         "unfortunately, i", "as an ai"]

    /// A line that only announces the prompt: a label with nothing after it, a line ending
    /// with a colon, or a lead-in sentence without one ("Sure! Here is a more vivid version.").
    private static func isLeadIn(_ line: String) -> Bool {
        let text = stripMarkdown(line)
        if text.isEmpty || text.hasSuffix(":") || stripLabel(text).isEmpty { return true }
        let sentence = text.trimming(".!")
        return isLabel(sentence, afterColon: false) || (startsWithWord(sentence.lowercased(), leadInOpeners) && !text.contains(":"))
    }

    private static func isRefusal(_ line: String) -> Bool {
        let text = stripQuotes(stripMarkdown(line)).lowercased().replacingAll("’", with: "'")
        return refusalOpeners.contains { text.hasPrefix($0) }
    }

    /// Whether `text` starts with one of `words` as a whole word.
    private static func startsWithWord(_ text: String, _ words: [String]) -> Bool {
        let text = text.replacingAll("’", with: "'")
        return words.contains { word in
            text.hasPrefix(word) && text.dropFirst(word.count).first.map { !$0.isLetter && $0 != "'" } ?? true
        }
    }

    // MARK: Markdown

    /// One layer of markdown at the start: heading or quote marks, a bullet or list number,
    /// a bold label (`**Option 1:**`); then bold, code and italic marks anywhere.
    private static func stripMarkdown(_ text: String) -> String {
        var result = text.trimmingWhitespace()
        while let first = result.first, first == "#" || first == ">" { result = result.dropFirst().trimmingWhitespace() }
        for bullet in ["- ", "* ", "• ", "+ "] where result.hasPrefix(bullet) { result = String(result.dropFirst(bullet.count)) }
        result = stripListNumber(result)
        for bold in ["**", "__"] where result.hasPrefix(bold) {
            // `**Label:** text` and `**Label**: text`.
            let rest = result.dropFirst(bold.count)
            if let close = rest.firstRange(of: bold) {
                let after = rest[close.upperBound...].trimmingWhitespace()
                if rest[..<close.lowerBound].hasSuffix(":") { result = after }
                else if after.hasPrefix(":") { result = after.dropFirst().trimmingWhitespace() }
            }
        }
        for marker in ["**", "__", "`"] { result = result.replacingAll(marker, with: "") }
        for italic: Character in ["*", "_"] where result.count >= 2 && result.first == italic && result.last == italic {
            result = String(result.dropFirst().dropLast())
        }
        return result.trimmingWhitespace()
    }

    /// `1. text`, `2) text` → `text`: the first option of a numbered list.
    private static func stripListNumber(_ text: String) -> String {
        let digits = text.prefix(while: \.isNumber)
        guard !digits.isEmpty, digits.count <= 2 else { return text }
        let rest = text.dropFirst(digits.count)
        guard let mark = rest.first, mark == "." || mark == ")", rest.dropFirst().first?.isWhitespace == true else { return text }
        return rest.dropFirst().trimmingWhitespace()
    }

    // MARK: Labels

    private static let labels: Set = ["enhanced", "improved", "refined", "output", "answer", "result", "response"]

    /// Whether `text` names what follows: "Enhanced prompt", "Here's the improved version",
    /// "Option 1", "Answer", "Refined prompt (cinematic)". A lead-in sentence ("Sure! Here's…")
    /// counts only before a colon.
    private static func isLabel(_ text: String, afterColon: Bool) -> Bool {
        var lower = text.lowercased().trimmingWhitespace()
        // "Enhanced prompt (cinematic)"
        if lower.hasSuffix(")"), let open = lower.firstIndex(of: "(") { lower = lower[..<open].trimmingWhitespace() }
        let words = lower.split(separator: " ")
        // A label holds no quote (apostrophes aside: "Here's"): in `"Hope: a poem" on a wall`
        // the colon is the prompt's.
        guard !words.isEmpty, !lower.contains(where: { isQuote($0) && $0 != "'" && $0 != "’" }) else { return false }
        if labels.contains(lower) { return true }
        if words.count <= 6, let last = words.last, ["prompt", "version"].contains(String(last)) { return true }
        if words.count == 2, ["option", "version", "prompt", "variation"].contains(String(words[0])),
           words[1].allSatisfy(\.isNumber) { return true }
        return afterColon && words.count <= 15 && startsWithWord(lower, leadInOpeners)
    }

    /// `Label: text`, `Label - text`, `Label = text` → `text`.
    private static func stripLabel(_ text: String) -> String {
        for separator: Character in [":", "-", "–", "—", "="] {
            guard let index = text.firstIndex(of: separator),
                  isLabel(String(text[..<index]), afterColon: separator == ":") else { continue }
            return text[text.index(after: index)...].trimmingWhitespace()
        }
        return text
    }

    // MARK: Quotes

    private static let quotePairs: [(open: Character, close: Character)] = [
        ("\"", "\""), ("'", "'"), ("`", "`"), ("“", "”"), ("”", "”"), ("„", "“"), ("„", "”"), ("‘", "’"), ("‚", "‘"),
        ("«", "»"), ("»", "«"), ("‹", "›"), ("「", "」"), ("『", "』"),
    ]

    private static func isQuote(_ character: Character) -> Bool {
        quotePairs.contains { $0.open == character || $0.close == character }
    }

    /// One pair of quotes around the whole text, when the first quote closes at the end (not
    /// in `"Hope" on a wall, "Love"`).
    private static func stripQuotes(_ text: String) -> String {
        for (open, close) in quotePairs where text.count >= 2 && text.first == open && text.last == close {
            let inner = Array(text.dropFirst().dropLast())
            if !closesEarly(inner, open: open, close: close) { return String(inner).trimmingWhitespace() }
        }
        return text
    }

    /// Whether a quote inside `inner` closes the opening one. An apostrophe between letters
    /// (`fox's`, `fox’s`) is no quote; a straight quote opens after a space and closes after a word.
    private static func closesEarly(_ inner: [Character], open: Character, close: Character) -> Bool {
        var depth = 0
        for (i, character) in inner.enumerated() where character == open || character == close {
            let previous = i > 0 ? inner[i - 1] : nil
            let next = i + 1 < inner.count ? inner[i + 1] : nil
            if previous?.isLetter == true && next?.isLetter == true && (character == "'" || character == "’") { continue }
            let opens = open != close ? character == open : previous.map(opensAQuote(after:)) ?? true
            depth += opens ? 1 : -1
            if depth < 0 { return true }
        }
        return false
    }

    /// Whether a straight quote after `previous` opens one: after a space, a bracket or a quote.
    private static func opensAQuote(after previous: Character) -> Bool {
        previous.isWhitespace || "([{".contains(previous) || quotePairs.contains { $0.open == previous }
    }

    // MARK: Length

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

    /// The text without any of `characters` at either end.
    func trimming(_ characters: String) -> String {
        let start = firstIndex { !characters.contains($0) } ?? endIndex
        let end = lastIndex { !characters.contains($0) }.map(index(after:)) ?? start
        return start < end ? String(self[start..<end]) : ""
    }
}
