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

    func run() async throws { try await PauseReport.set(paused: true, model: model, global: global, json: json) }
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

    func run() async throws { try await PauseReport.set(paused: false, model: model, global: global, json: json) }
}

struct PauseReport: Encodable {
    let model: String
    let paused: Bool
    /// False when the model already was in that state.
    let changed: Bool

    /// Pauses or resumes `model` and prints the outcome: the one body of both commands.
    static func set(paused: Bool, model: String, global: GlobalOptions, json: Bool) async throws {
        try await global.withClient { client in
            let changed = paused ? try await client.pause(model: model) : try await client.resume(model: model)
            PauseReport(model: model, paused: paused, changed: changed).print(json: json)
        }
    }

    func print(json: Bool) {
        if json {
            Output.json(self)
        } else {
            let state = paused ? "paused" : "running"
            Output.line(changed ? "\(model): \(state)" : "\(model): already \(state)")
        }
    }
}
