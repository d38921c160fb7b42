import ArgumentParser
import ImageQueueCommandLine
import ImageQueue

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a queued job.",
        discussion: "Exit status: 0 cancelled, 1 when the job is no longer queued or unknown."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The job id.")
    var jobID: String

    func run() async throws {
        try await global.withClient { client in
            try await client.cancel(jobID)
            Output.line("cancelled \(jobID)")
        }
    }
}
