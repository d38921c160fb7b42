import ArgumentParser
import ImageQueue
import ImageQueueCommandLine
import ImageWorker
import CurlHTTP

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Print the models and their backends as a worker here would resolve them (no secrets).",
        discussion: """
            From IMAGEQUEUE_MODELS_FILE when it is set (in the environment or --config FILE), else from \
            the seed's FLUX_WORKER_URL, SDXL_WORKER_URL and SDXL_API_KEY. Keys are never printed: only the \
            name of the variable that holds each and whether it is set. Exit status 2 when the file is \
            malformed. Does not connect to Redis.
            """
    )

    @Flag(help: "Print JSON.")
    var json = false

    @Option(help: "A file of KEY=VALUE settings (the environment wins).")
    var config: String?

    func run() async throws {
        let settings = try Settings.load(environment: Settings.process.values, configFile: config)
        let table: ModelTable
        var unconfigured: [(model: String, reason: String)] = []
        if let file = settings["IMAGEQUEUE_MODELS_FILE"] {
            table = try ModelTable.load(file: file, environment: settings.values, requireKeys: false)
        } else {
            let names = settings["IMAGEQUEUE_MODELS"].map { $0.split(separator: ",").map { $0.trimmingWhitespace() } } ?? QueueConfiguration().models
            (table, unconfigured) = ModelTable.fromSeedVariables(names: names, fluxURL: try settings.url("FLUX_WORKER_URL"),
                                                                 sdxlURL: try settings.url("SDXL_WORKER_URL"),
                                                                 sdxlAPIKey: settings["SDXL_API_KEY"], placeholder: false)
        }
        if json {
            var models: [JSONValue] = []
            for spec in table.models {
                guard case .object(var fields) = spec.publicDescription else { continue }
                if spec.apiKeyVariable != nil { fields["api_key_set"] = .bool(spec.apiKey != nil) }
                models.append(.object(fields))
            }
            let missing: [JSONValue] = unconfigured.map { .object(["name": .string($0.model), "reason": .string($0.reason)]) }
            Output.json(JSONValue.object(["file": table.file.map(JSONValue.string) ?? .null, "models": .array(models),
                                          "unconfigured": .array(missing)]))
            return
        }
        Output.line(table.file.map { "models from \($0)" } ?? "models from FLUX_WORKER_URL, SDXL_WORKER_URL and SDXL_API_KEY")
        for spec in table.models {
            var line = "\(spec.name)  \(spec.backend.rawValue)"
            if !spec.urls.isEmpty { line += "  " + spec.urls.map(shareableURL).joined(separator: ", ") }
            if let model = spec.backendModel { line += "  model \(model)" }
            if let variable = spec.apiKeyVariable { line += "  key \(variable) (\(spec.apiKey == nil ? "not set" : "set"))" }
            if let workflow = spec.workflowPath { line += "  workflow \(workflow) → node \(spec.promptNode ?? "?").\(spec.promptInput)" }
            Output.line(line)
        }
        for (model, reason) in unconfigured { Output.line("\(model)  not configured: \(reason)") }
    }
}
