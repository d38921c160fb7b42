import ArgumentParser
import ImageQueueCommandLine
import ImageQueue

struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "workers", abstract: "List the live workers.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print a JSON array: id, host, pid, models, started_at, heartbeat_at, current_jobs, and with Sentinel redis_master and redis_failover_at.")
    var json = false

    func run() async throws {
        try await global.withClient { client in
            let workers = try await client.inspector.workers()
            if json {
                Output.json(workers)
                return
            }
            if workers.isEmpty { Output.line("no live workers") }
            for worker in workers {
                let jobs = worker.currentJobs.isEmpty ? "idle" : worker.currentJobs.joined(separator: ", ")
                var redis = ""
                if let master = worker.redisMaster {
                    redis = "  redis master \(master)" + (worker.redisFailoverAt.map { ", failover at \(Output.time($0))" } ?? "")
                }
                Output.line("\(worker.id)  models \(worker.models.joined(separator: ","))  since \(Output.time(worker.startedAt))  \(jobs)\(redis)")
            }
        }
    }
}
