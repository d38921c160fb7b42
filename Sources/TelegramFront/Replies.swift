import ImageQueue

/// Every text the bot sends: usage, refusals, the live status lines and captions.
public enum Replies {
    /// The usage text, naming the models, after the problem when there is one.
    public static func usage(models: [String], problem: String? = nil) -> String {
        var lines: [String] = []
        if let problem { lines.append("That command is not quite right: \(problem).") }
        lines.append("Usage: /image=<model>/<prompt>")
        lines.append("Models: " + models.joined(separator: ", "))
        lines.append("Example: /image=\(models.first ?? "flux")/a lighthouse at dawn")
        lines.append("Several images (up to \(JobRequest.maxImageCount)): /image=\(models.first ?? "flux")/x3 a lighthouse at dawn")
        return lines.joined(separator: "\n")
    }

    /// The answer to a request the queue refused (validation, rate limit, a full queue).
    public static func refusal(_ error: ImageQueueError, models: [String]) -> String {
        switch error.code {
        case .unknownModel:
            return "Unknown model. Choose one of: \(models.joined(separator: ", ")).\nExample: /image=\(models.first ?? "flux")/a lighthouse at dawn"
        case .emptyPrompt:
            return "The prompt is empty. Describe the image after the model, e.g. /image=\(models.first ?? "flux")/a lighthouse at dawn"
        case .promptTooLong:
            return "The prompt is too long: \(error.message). Please shorten it."
        case .controlCharacters:
            return "The prompt contains characters that cannot be used. Please type it again as plain text."
        case .rateLimited:
            let seconds = max(1, ((error.retryAfter ?? .seconds(1)).wholeMilliseconds + 999) / 1000)
            return "You have made too many requests. Please try again in \(seconds) s."
        case .redisFull, .queueFull:
            return "The queue is full right now, nothing was queued. Please try again later."
        default:
            return "This request cannot be accepted: \(error.message)."
        }
    }

    /// The answer to a sender who is not on the allow-list.
    public static let notAllowed = "Sorry, this bot only serves the people it was set up for."

    /// The status line of a queued job, with the expected wait when there is one
    /// (`⏳ Queued for flux: position 3, about 40 s.`).
    public static func status(forQueued model: String, position: Int?, etaMilliseconds: Int64? = nil) -> String {
        let wait = etaMilliseconds.flatMap(about).map { ", " + $0 } ?? ""
        guard let position else { return "⏳ Queued for \(model)\(wait)." }
        return position <= 1 ? "⏳ Queued for \(model): you are next\(wait)." : "⏳ Queued for \(model): position \(position)\(wait)."
    }

    /// An expected wait as people say it (`QueueETA.phrase`): nil under half a second.
    public static func about(_ milliseconds: Int64) -> String? {
        QueueETA.phrase(milliseconds: milliseconds)
    }

    /// The status line for an event; `position` overrides the event's (a fresher reading),
    /// and the event's expected wait is scaled to it (the wait grows with the place in line;
    /// the queue publishes a new estimate only with a new `queued` event).
    public static func status(_ event: StatusEvent, position: Int? = nil) -> String {
        switch event.status {
        case .queued:
            var eta = event.etaMilliseconds
            if let position, let eta0 = eta, let old = event.position, old >= 1, position != old {
                eta = position < 1 ? 0 : Int64((Double(eta0) * (Double(position) - 0.5) / (Double(old) - 0.5)).rounded())
            }
            return status(forQueued: event.model, position: position ?? event.position, etaMilliseconds: eta)
        case .enhancing:
            return "✨ Improving your prompt…"
        case .generating:
            if let percent = event.progressPercent {
                return "🎨 Generating with \(event.model)… \(percent) %"
            }
            if event.fields["enhancement"]?.objectValue?["fallback"] == .bool(true) {
                return "🎨 Generating with \(event.model) (using your prompt as written)…"
            }
            return "🎨 Generating with \(event.model)…"
        case .retrying:
            // The failed try and the tries allowed; anything else (the event is data from
            // Redis) gets the plain line rather than a wrong count or an overflow.
            if let retry = event.fields["retry"]?.objectValue, let attempt = retry["attempt"]?.intValue,
               let of = retry["of"]?.intValue, attempt >= 0, attempt < of {
                return "🔁 The image service had a hiccup; trying again (try \(attempt + 1) of \(of))…"
            }
            return "🔁 The image service had a hiccup; trying again…"
        case .completed:
            return "✅ Done."
        case .failed:
            return "❌ " + (event.error?.message ?? "The image could not be generated.")
        case .cancelled:
            return "🚫 The request was cancelled."
        }
    }

    /// The final status line for a completed job.
    public static func done(seconds: Int64?) -> String {
        guard let seconds else { return "✅ Done." }
        return "✅ Done in \(seconds) s."
    }

    /// The button under a waiting or running job's status message.
    public static let cancelButton = "✖️ Cancel"
    /// The button under a delivered image (or an album's status message).
    public static let againButton = "🔁 Again"

    /// The answer to a press of Cancel by its asker.
    public static let cancelling = "Cancelling…"
    /// The answer to a press of Again that queued a new job.
    public static let again = "🔁 Queued again."
    /// The answer to a press of someone else's Cancel.
    public static let notYoursToCancel = "Only the person who asked can cancel this."
    /// The answer to a press of someone else's Again.
    public static let notYoursToRepeat = "Only the person who asked can use Again on this."
    /// The answer to a press of a button whose job no longer exists.
    public static let buttonGone = "This request no longer exists."

    /// The answer to a press of Cancel on a job that has ended.
    public static func alreadyEnded(_ status: JobStatus) -> String {
        switch status {
        case .completed: "Too late to cancel: this image is already done."
        case .failed: "Nothing to cancel: this request has already failed."
        case .cancelled: "This request is already cancelled."
        default: "Nothing to cancel: this request has already ended."
        }
    }

    /// The answer when a finished image cannot be sent.
    public static func undeliverable(_ reason: String) -> String { "❌ The image was made but could not be sent: \(reason)" }

    /// The final line when the job was removed before it finished (an operator purged it).
    public static let jobGone = "❌ This request no longer exists: it was removed from the queue."

    /// Telegram's limit on a photo caption, in UTF-16 code units.
    public static let captionLimit = 1024

    /// The caption: the prompt the image was made from, cut at a word boundary with an
    /// ellipsis when it exceeds Telegram's limit (measured in UTF-16 code units, as Telegram
    /// counts).
    public static func caption(_ prompt: String, limit: Int = captionLimit) -> String {
        let text = prompt.trimmingWhitespace()
        guard text.utf16.count > limit else { return text }
        var cut = ""
        var units = 0
        for character in text {
            let size = character.utf16.count
            if units + size > limit - 1 { break }
            cut.append(character)
            units += size
        }
        if let space = cut.lastIndex(where: \.isWhitespace), cut.distance(from: cut.startIndex, to: space) > cut.count / 2 {
            cut = String(cut[..<space])
        }
        return cut.trimmingWhitespace() + "…"
    }
}
