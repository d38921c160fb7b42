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
                         "status    \(info.status.rawValue)" + (info.position.map { " (position \($0))" } ?? ""),
                         "attempt   \(info.attempt) of \(info.maxAttempts)",
                         "prompt    \(info.prompt ?? "-")"]
            if let enhanced = info.enhancedPrompt { lines.append("enhanced  \(enhanced)") }
            lines.append("enqueued  \(Output.time(info.enqueuedAt))")
            if info.startedAt != nil { lines.append("started   \(Output.time(info.startedAt))") }
            if info.finishedAt != nil { lines.append("finished  \(Output.time(info.finishedAt))") }
            if let worker = info.worker { lines.append("worker    \(worker)") }
            if let result = info.result {
                lines.append("result    \(result.contentType), \(result.bytes) bytes, \(result.path ?? result.key ?? result.store)")
            }
            if let error = info.error { lines.append("error     \(error.code): \(error.message)") }
            lines.forEach(Output.line)
        }
    }
}
