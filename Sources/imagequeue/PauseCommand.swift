import ArgumentParser
import ImageQueueCommandLine
import ImageQueue

extension JobPriority: ExpressibleByArgument {}

struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Stop every worker from claiming a model's jobs; running jobs finish, enqueue still accepts.",
        discussion: "The pause is kept in Redis: it holds for every worker on every host, and across restarts, until `imagequeue resume`."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The model.")
    var model: String

    @Flag(help: "Print {\"model\": ..., \"paused\": true, \"changed\": ...}.")
    var json = false

    func run() async throws {
        try await global.withClient { client in
            let changed = try await client.pause(model: model)
            PauseReport(model: model, paused: true, changed: changed).print(json: json)
        }
    }
}

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Let workers claim a paused model's jobs again; an idle worker starts at once."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The model.")
    var model: String

    @Flag(help: "Print {\"model\": ..., \"paused\": false, \"changed\": ...}.")
    var json = false

    func run() async throws {
        try await global.withClient { client in
            let changed = try await client.resume(model: model)
            PauseReport(model: model, paused: false, changed: changed).print(json: json)
        }
    }
}

struct PauseReport: Encodable {
    let model: String
    let paused: Bool
    /// False when the model already was in that state.
    let changed: Bool

    func print(json: Bool) {
        if json {
            Output.json(self)
        } else {
            let state = paused ? "paused" : "running"
            Output.line(changed ? "\(model): \(state)" : "\(model): already \(state)")
        }
    }
}
