import ArgumentParser
import ImageQueueCommandLine
import ImageQueue

struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queues", abstract: "Show each model's queue.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print one JSON object keyed by model.")
    var json = false

    func run() async throws {
        try await global.withClient { client in
            let stats = try await client.inspector.stats()
            if json {
                Output.json(stats)
                return
            }
            Output.line("model     pending  active  dead  concurrency  completed  failed  oldest  state")
            for model in client.configuration.models {
                guard let s = stats[model] else { continue }
                let age = s.oldestPendingAgeMilliseconds.map { "\(Double($0) / 1000) s" } ?? "-"
                Output.line([model.padding(9), String(s.pending).padding(8), String(s.active).padding(7), String(s.dead).padding(5),
                             String(s.concurrency).padding(12), String(s.completedTotal).padding(10),
                             String(s.failedTotal).padding(7), age.padding(7), s.paused ? "paused" : "running"].joined(separator: " "))
            }
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
