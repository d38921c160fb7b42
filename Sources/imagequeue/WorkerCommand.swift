import ArgumentParser
import ImageQueueCommandLine

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: WorkerOptions.abstract,
        discussion: WorkerOptions.discussion
    )

    @OptionGroup var options: WorkerOptions

    func run() async throws {
        try await options.run()
    }
}
