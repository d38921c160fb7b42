import ArgumentParser
import ImageQueueCommandLine
import ImageQueue
import Logging
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
        subcommands: [DemoCommand.self, WorkerCommand.self, ServeCommand.self, TelegramCommand.self, EnqueueCommand.self, StatusCommand.self, WatchCommand.self, CancelCommand.self, ModelsCommand.self,
                      QueuesCommand.self, WorkersCommand.self, DeadCommand.self, ConcurrencyCommand.self, PauseCommand.self, ResumeCommand.self, ScriptsCommand.self]
    )

    static func main() async {
        CommandRunner.prepareProcess()
        bootstrapLogging()
        await CommandRunner.run(Self.self, arguments: globalOptionsAfterSubcommand(Array(CommandLine.arguments.dropFirst())))
    }
}

extension ImageQueueCommand {
    /// Options every command takes (`--redis`, `--prefix`) may also stand
    /// before the subcommand: move them behind its name, where the parser reads them.
    static func globalOptionsAfterSubcommand(_ arguments: [String]) -> [String] {
        let global: Set<String> = ["--redis", "--prefix"]
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = String(argument.split(separator: "=", maxSplits: 1).first ?? "")
            guard global.contains(name) else { break }
            if argument.contains("=") {
                leading.append(argument)
                index += 1
            } else {
                leading.append(contentsOf: arguments[index..<min(index + 2, arguments.count)])
                index += 2
            }
        }
        guard !leading.isEmpty, index < arguments.count else { return arguments }
        // The subcommand path: words up to the first option (e.g. `dead list`).
        var rest = Array(arguments[index...])
        var path = 0
        while path < rest.count, !rest[path].hasPrefix("-"), subcommandNames.contains(rest[path]) { path += 1 }
        rest.insert(contentsOf: leading, at: path)
        return rest
    }

    private static let subcommandNames: Set<String> = ["demo", "worker", "serve", "telegram", "enqueue", "status", "watch", "cancel", "queues", "workers", "dead", "list",
                                                       "retry", "purge", "concurrency", "scripts"]

    /// Logs go to stderr at `IMAGEQUEUE_LOG_LEVEL` (default `error`), so a command's
    /// own one-line message is all a user sees when something fails.
    static func bootstrapLogging() {
        // A worker logs its work (info); the other commands only their failures.
        let firstWord = CommandLine.arguments.dropFirst().first { !$0.hasPrefix("-") }
        let fallback: Logger.Level = ["worker", "serve", "telegram"].contains(firstWord) ? .info : .error
        CommandRunner.bootstrapLogging(fallback: fallback)
    }
}
