import ArgumentParser
import ImageQueueCommandLine
import ImageQueue

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Print a job's events as they happen until it finishes.",
        discussion: "Exit status: 0 completed, 1 failed or cancelled (or the job is unknown)."
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print each event as one JSON object per line, as published.")
    var json = false

    @Argument(help: "The job id.")
    var jobID: String

    func run() async throws {
        try await global.withClient { client in
            var last: StatusEvent?
            for try await event in client.watch(jobID) {
                last = event
                Output.line(json ? event.json : Self.describe(event))
                Output.flush()
            }
            guard last?.status == .completed else { throw ExitCode(1) }
        }
    }

    static func describe(_ event: StatusEvent) -> String {
        var text = "\(Output.time(event.time))  \(event.status.rawValue)"
        switch event.status {
        case .queued:
            if let position = event.position { text += "  position \(position)" }
            if let wait = event.etaMilliseconds.flatMap({ QueueETA.phrase(milliseconds: $0) }) { text += ", starts in \(wait)" }
            if let error = event.error { text += "  after \(error.code): \(error.message)" }
        case .enhancing, .generating:
            if let percent = event.progressPercent, event.status == .generating {
                // A progress event says only how far the render is: "generating 45 %".
                text += " \(percent) %"
                if event.hasPreview { text += "  (preview)" }
                return text
            }
            text += "  attempt \(event.attempt)"
            if event.status == .generating, let prompt = event.enhancedPrompt { text += "  prompt: \(prompt)" }
        case .retrying:
            if let error = event.error { text += "  \(error.code): \(error.message)" }
        case .completed:
            // Every image, in order (one for most jobs).
            if let result = event.result {
                text += "  " + result.allImages.map { "\($0.path ?? $0.key ?? $0.store) (\($0.bytes) bytes)" }.joined(separator: ", ")
            }
        case .failed:
            if let error = event.error { text += "  \(error.code): \(error.message)" }
        case .cancelled:
            break
        }
        return text
    }
}
