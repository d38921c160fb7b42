import ArgumentParser
import ImageQueueCommandLine
import ImageQueue
import TelegramFront

struct ScriptsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scripts",
        abstract: "List the embedded Lua scripts, or print one exactly as sent to Redis.",
        discussion: "For clients in other languages: see docs/PROTOCOL.md."
    )

    @Argument(help: "A script name, e.g. enqueueJob.")
    var name: String?

    func run() async throws {
        // The queue's scripts and the Telegram front's: their names never overlap.
        let sources = ImageQueueScripts.sources.merging(TelegramScripts.sources) { queue, _ in queue }
        guard let name else {
            sources.keys.sorted().forEach(Output.line)
            return
        }
        guard let source = sources[name] else {
            throw CommandFailure(status: 2, message: "no script named '\(name)'; choose one of: "
                                 + sources.keys.sorted().joined(separator: ", "))
        }
        print(source, terminator: source.hasSuffix("\n") ? "" : "\n")
    }
}
