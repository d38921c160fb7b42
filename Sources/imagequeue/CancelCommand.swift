import ArgumentParser
import ImageQueueCommandLine
import ImageQueue

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a queued or running job.",
        discussion: "A running job's worker stops it within about a second and its slot frees at once. Exit status: 0 cancelled, 1 when the job has already finished or is unknown."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The job id.")
    var jobID: String

    func run() async throws {
        try await global.withClient { client in
            switch try await client.cancel(jobID) {
            case .wasQueued: Output.line("cancelled \(jobID)")
            case .wasRunning: Output.line("cancelled \(jobID) (it was running: its worker stops it)")
            }
        }
    }
}
