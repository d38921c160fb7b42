import ArgumentParser
import ImageQueueCommandLine
import ImageQueue
import Logging
import ServiceLifecycle
import TelegramFront
#if canImport(Glibc)
import Glibc
#endif

struct TelegramCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "telegram",
        abstract: "Run the Telegram bot: /image=<model>/<prompt> commands, live status edits, the image as a photo.",
        discussion: """
            TELEGRAM_BOT_TOKEN is required. TELEGRAM_API_URL (default https://api.telegram.org) points at the \
            Bot API server; TELEGRAM_ALLOWED_IDS (user or chat ids, comma-separated) limits who is served. \
            TELEGRAM_PRIORITY_IDS (user ids, comma-separated) queues those users' jobs with priority high. \
            Run as many as you like: one at a time polls (a lease in Redis), the others take over when it stops \
            or dies. SIGTERM/SIGINT: finish the sends in progress, then hand the lease over.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "This front's id in the lease and logs (default: <host>:<pid>).")
    var id: String?

    @Option(name: .customLong("poll-timeout"), help: "Seconds one getUpdates long poll waits for news.")
    var pollTimeout: Double = 25

    @Option(name: .customLong("lease-seconds"), help: "The poller lease; a dead poller is replaced within this time.")
    var leaseSeconds: Double = 15

    @Option(name: .customLong("edit-interval"), help: "Shortest time between two edits of a status message, in seconds.")
    var editInterval: Double = 1.5

    @Option(name: .customLong("chat-interval"), help: "Shortest time between two status edits in one chat, in seconds (groups: three times).")
    var chatInterval: Double = 1

    @Flag(name: .customLong("no-enhance"), help: "Do not ask workers to improve prompts with an LLM.")
    var noEnhance = false

    func validate() throws {
        if !(0...50).contains(pollTimeout) { throw ValidationError("--poll-timeout must be from 0 to 50 seconds") }
        if !(1...600).contains(leaseSeconds) { throw ValidationError("--lease-seconds must be from 1 to 600") }
        if !(0...60).contains(editInterval) { throw ValidationError("--edit-interval must be from 0 to 60 seconds") }
        if !(0...60).contains(chatInterval) { throw ValidationError("--chat-interval must be from 0 to 60 seconds") }
    }

    func run() async throws {
        let settings = Settings.process
        guard let token = settings["TELEGRAM_BOT_TOKEN"] else {
            throw ConfigurationError(setting: "TELEGRAM_BOT_TOKEN", reason: "is not set: the front needs the bot's token from @BotFather")
        }
        var configuration = TelegramConfiguration(token: token, frontID: id ?? "\(hostName()):\(getpid())")
        guard configuration.botID != nil else {
            throw ConfigurationError(setting: "TELEGRAM_BOT_TOKEN", reason: "does not look like a bot token (<bot id>:<secret>)")
        }
        if let url = try settings.url("TELEGRAM_API_URL") { configuration.apiURL = url }
        configuration.allowedIDs = try settings.identifiers("TELEGRAM_ALLOWED_IDS", what: "user or chat id")
        configuration.priorityIDs = try settings.identifiers("TELEGRAM_PRIORITY_IDS", what: "user id") ?? []
        configuration.pollTimeout = .milliseconds(Int64(pollTimeout * 1000))
        configuration.leaseDuration = .milliseconds(Int64(leaseSeconds * 1000))
        configuration.editInterval = .milliseconds(Int64(editInterval * 1000))
        configuration.chatEditInterval = .milliseconds(Int64(chatInterval * 1000))
        configuration.enhance = !noEnhance
        let logger = Logger(label: "imagequeue.telegram")
        try await GlobalOptions.verifyRedis(global.redisConfiguration(clientName: "imagequeue-telegram"), tolerateUnreachable: true)
        let front = try TelegramFront(configuration: configuration, redis: global.redisConfiguration(clientName: "imagequeue-telegram"),
                                      queue: global.queueConfiguration(), logger: logger)
        Output.error("telegram front \(configuration.frontID) starting (bot \(configuration.botID ?? "?"))")
        let group = ServiceGroup(configuration: .init(services: [.init(service: front)],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
