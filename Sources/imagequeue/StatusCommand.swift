import ArgumentParser
import ImageQueueCommandLine
import ImageQueue

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a job's state.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print one JSON object with every field (absent ones as null).")
    var json = false

    @Argument(help: "The job id.")
    var jobID: String

    func run() async throws {
        try await global.withClient { client in
            let info = try await client.inspector.status(jobID)
            if json {
                Output.json(info)
                return
            }
            var lines = ["job       \(info.id)",
                         "model     \(info.model)",
                         "status    \(info.status.rawValue)" + (info.position.map { position in
                             " (position \(position)" + (info.etaMilliseconds.map { ", starts " + (QueueETA.phrase(milliseconds: $0).map { "in " + $0 } ?? "now") } ?? "") + ")"
                         } ?? ""),
                         "priority  \(info.priority.rawValue)",
                         "attempt   \(info.attempt) of \(info.maxAttempts)",
                         "prompt    \(info.prompt ?? "-")"]
            if let enhanced = info.enhancedPrompt { lines.append("enhanced  \(enhanced)") }
            lines.append("enqueued  \(Output.time(info.enqueuedAt))")
            if info.startedAt != nil { lines.append("started   \(Output.time(info.startedAt))") }
            if info.finishedAt != nil { lines.append("finished  \(Output.time(info.finishedAt))") }
            if let worker = info.worker { lines.append("worker    \(worker)") }
            // One line per image (a job makes 1 to 4).
            for image in info.result?.allImages ?? [] {
                lines.append("result    \(image.contentType), \(image.bytes) bytes, \(image.path ?? image.key ?? image.store)")
            }
            if let error = info.error { lines.append("error     \(error.code): \(error.message)") }
            if let webhook = info.webhook {
                var answer = webhook.lastStatus.map { ", last answer HTTP \($0)" } ?? ""
                if let problem = webhook.lastError { answer += ", last error: \(problem)" }
                lines.append("webhook   \(webhook.url): \(webhook.state), \(webhook.attempts) attempt\(webhook.attempts == 1 ? "" : "s")\(answer)")
            }
            lines.forEach(Output.line)
        }
    }
}
