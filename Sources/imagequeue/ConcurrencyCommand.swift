import ArgumentParser
import ImageQueueCommandLine
import ImageQueue

struct ConcurrencyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "concurrency",
        abstract: "Show, or set, how many jobs of a model run at once across all workers."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The model.")
    var model: String

    @Argument(help: "The new limit (a whole number >= 1); omit to show the current one.")
    var limit: Int?

    @Flag(help: "Print {\"model\": ..., \"concurrency\": N}.")
    var json = false

    func run() async throws {
        try await global.withClient { client in
            try client.configuration.requireModel(model)
            if let limit { try await client.setConcurrency(limit, model: model) }
            let current = try await client.inspector.concurrency(model: model)
            if json {
                Output.json(ConcurrencyReport(model: model, concurrency: current))
            } else {
                Output.line("\(model): \(current)")
            }
        }
    }
}

struct ConcurrencyReport: Encodable {
    let model: String
    let concurrency: Int
}
