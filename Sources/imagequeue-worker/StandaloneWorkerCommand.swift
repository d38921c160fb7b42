import ArgumentParser
import ImageQueueCommandLine

/// `imagequeue-worker`: `imagequeue worker` as an executable of its own. It links neither
/// the HTTP API nor the Telegram front (nor, through them, the full Foundation with ICU), so
/// an idle worker maps and touches less memory.
@main
struct StandaloneWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imagequeue-worker",
        abstract: WorkerOptions.abstract,
        discussion: WorkerOptions.discussion
    )

    @OptionGroup var options: WorkerOptions

    static func main() async {
        CommandRunner.prepareProcess()
        CommandRunner.bootstrapLogging(fallback: .info)
        await CommandRunner.run(Self.self, arguments: Array(CommandLine.arguments.dropFirst()))
    }

    func run() async throws {
        try await options.run()
    }
}
