import ArgumentParser
import ImageQueueCommandLine
import ImageQueue

struct DeadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead",
        abstract: "List, retry or purge a model's dead-lettered jobs.",
        subcommands: [List.self, Retry.self, Purge.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead jobs, oldest first.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The model.") var model: String
        @Option(help: "At most this many.") var limit = 100
        @Flag(help: "Print a JSON array of job objects.") var json = false

        func run() async throws {
            try await global.withClient { client in
                try client.configuration.requireModel(model)
                let jobs = try await client.inspector.deadJobs(model: model, limit: limit)
                if json {
                    Output.json(jobs)
                    return
                }
                if jobs.isEmpty { Output.line("no dead jobs for \(model)") }
                for job in jobs {
                    Output.line("\(job.id)  \(Output.time(job.finishedAt))  \(job.error.map { "\($0.code): \($0.message)" } ?? "-")")
                }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put dead jobs back at the tail of their queue.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The model.") var model: String
        @Option(help: "Only this job (default: all).") var id: String?
        @Flag(help: "Print {\"retried\": N}.") var json = false

        func run() async throws {
            try await DeadCommand.change(global, verb: "retried", json: json) { try await $0.retryDead(model: model, id: id) }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete dead jobs for good.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The model.") var model: String
        @Option(help: "Only this job (default: all).") var id: String?
        @Flag(help: "Print {\"purged\": N}.") var json = false

        func run() async throws {
            try await DeadCommand.change(global, verb: "purged", json: json) { try await $0.purgeDead(model: model, id: id) }
        }
    }
}

extension DeadCommand {
    /// Runs a dead-list change and reports how many jobs it touched.
    static func change(_ global: GlobalOptions, verb: String, json: Bool,
                       _ body: (ImageQueueClient) async throws -> Int) async throws {
        try await global.withClient { client in
            let count = try await body(client)
            if json { Output.json([verb: count]) } else { Output.line("\(verb) \(count) job(s)") }
        }
    }
}
