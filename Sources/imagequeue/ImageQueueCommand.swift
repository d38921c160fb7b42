import ArgumentParser
import ImageQueue
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// The `imagequeue` command: composes the library's parts; owns no queue logic itself.
@main
struct ImageQueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imagequeue",
        abstract: "A durable Redis job queue for AI image generation.",
        subcommands: [EnqueueCommand.self, StatusCommand.self, WatchCommand.self, CancelCommand.self,
                      QueuesCommand.self, DeadCommand.self, ConcurrencyCommand.self, ScriptsCommand.self]
    )

    /// Runs the command and maps every failure to an exit code: 2 for usage and
    /// validation errors, 3 when rate limited, 1 for anything else; one line on stderr.
    static func main() async {
        let status: Int32
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            status = 0
        } catch let exit as ExitCode {
            status = exit.rawValue
        } catch let error as ImageQueueError {
            Output.error(error.message)
            status = error.isValidation ? 2 : (error.code == .rateLimited ? 3 : 1)
        } catch let error as RedisError {
            Output.error(error.description)
            status = error.kind == .invalidURL ? 2 : 1
        } catch let error as CommandFailure {
            Output.error(error.message)
            status = error.status
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }  // --help, --version
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid usage"
            Output.error(message + " (see 'imagequeue --help')")
            status = 2
        }
        Output.flush()
        Glibc.exit(status)
    }
}

/// A failure with its own exit status and message.
struct CommandFailure: Error {
    let status: Int32
    let message: String
}
