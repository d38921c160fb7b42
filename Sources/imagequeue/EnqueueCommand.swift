import ArgumentParser
import ImageQueueCommandLine
import ImageQueue

struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Queue a prompt for a model; prints the job id.",
        discussion: "Exit status: 0 queued, 2 invalid request, 3 rate limited, 1 Redis unavailable or full (nothing queued), or the enqueue not confirmed (a connection lost mid-call, or not_replicated: it may be queued; repeat it with the same --idempotency-key)."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The model to run (e.g. flux, sdxl).")
    var model: String

    @Option(help: "The user the request counts against for rate limiting.")
    var user: String

    @Flag(name: .customLong("no-enhance"), help: "Use the prompt as written, without LLM enhancement.")
    var noEnhance = false

    @Option(name: .customLong("idempotency-key"), help: "Repeating a request with the same key returns the first job.")
    var idempotencyKey: String?

    @Option(help: "high, normal or low: a model's high jobs are claimed first, then normal, then low.")
    var priority: JobPriority = .normal

    @Option(name: .customLong("n"), help: ArgumentHelp("How many images to make from the prompt, 1 to \(JobRequest.maxImageCount).",
                                                       valueName: "n"))
    var imageCount = 1

    @Option(name: .customLong("webhook"), help: "An http(s) URL that receives the job's final event, signed (docs/WEBHOOKS.md); loopback, private and metadata addresses are refused unless IMAGEQUEUE_WEBHOOK_ALLOW_HOSTS names the host.")
    var webhook: String?

    @Flag(help: "Print one JSON object: id, model, status, position, created.")
    var json = false

    @Argument(help: "The prompt.")
    var prompt: String

    func run() async throws {
        try await global.withClient { client in
            let job = try await client.enqueue(JobRequest(model: model, prompt: prompt, user: user, enhance: !noEnhance,
                                                          idempotencyKey: idempotencyKey, priority: priority,
                                                          imageCount: imageCount, webhookURL: webhook))
            if json {
                Output.json(job)
            } else {
                Output.line(job.id)
            }
        }
    }
}
