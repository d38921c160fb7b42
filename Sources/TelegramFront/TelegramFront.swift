import CurlHTTP
import ImageQueue
import Logging
import RedisClient
import ServiceLifecycle

/// `imagequeue telegram`: the seed's `/image=<model>/<prompt>` bot as a stateless producer
/// and watcher over the Bot API.
///
/// Any number of fronts may run; one at a time holds the poller lease in Redis and does
/// the work: it long-polls `getUpdates`, queues accepted commands, and delivers every
/// pending job's status and image. The others wait for the lease and take over when its
/// holder hands it over or dies. The update offset and the pending deliveries live in
/// Redis, so a new poller neither repeats nor drops an update and finishes what its
/// predecessor started.
public final class TelegramFront: Service, Sendable {
    let configuration: TelegramConfiguration
    let client: ImageQueueClient
    let bot: BotAPI
    let state: FrontState
    let subscriber: RedisSubscriber
    let logger: Logger
    let botID: String

    /// Creates a front; nothing is contacted until `run`.
    /// - Throws: `ConfigurationError` for a token without a bot token's shape, or an invalid
    ///   queue configuration.
    public init(configuration: TelegramConfiguration, redis: RedisConfiguration, queue: QueueConfiguration,
                http: HTTPClient = HTTPClient(), logger: Logger = Logger(label: "imagequeue.telegram")) throws(ConfigurationError) {
        guard let botID = configuration.botID else {
            throw ConfigurationError(setting: "the bot token", reason: "does not look like a bot token (<bot id>:<secret>)")
        }
        do {
            client = try ImageQueueClient(redis: redis, configuration: queue, logger: logger)
        } catch {
            throw ConfigurationError(setting: "the queue configuration", reason: "cannot be used: \(error.message)")
        }
        self.configuration = configuration
        self.botID = botID
        self.logger = logger
        bot = BotAPI(token: configuration.token, apiURL: configuration.apiURL, http: http, logger: logger)
        // The front's own keys go through connections of its own, built from the same
        // settings as the client's: the queue library never hands its connection out, so it
        // stays the only writer of the queue's keys, and the front the only one of its own.
        // (A hook in the library to run a front's scripts would have been a raw connection
        // by another name.)
        var blockingConfiguration = redis
        blockingConfiguration.commandTimeout = configuration.leaseDuration + .seconds(10)
        state = FrontState(redis: makeRedisClient(configuration: redis, logger: logger),
                           blocking: makeRedisClient(configuration: blockingConfiguration, logger: logger),
                           keys: TelegramKeys(prefix: queue.keyPrefix, bot: botID), logger: logger)
        subscriber = RedisSubscriber(configuration: redis, logger: logger)
    }

    var models: [String] { client.configuration.models }

    /// Runs until a graceful shutdown (SIGTERM): waits for the lease, then polls and
    /// delivers; on shutdown, finishes the sends in progress and hands the lease over.
    /// - Throws: `ConfigurationError` when the Bot API refuses the token.
    public func run() async throws {
        // The Redis clients live while the front runs, and outlive its graceful shutdown.
        try await withRunning([client, subscriber, state.redis, state.blocking]) { try await serve() }
    }

    private func serve() async throws {
        guard let me = try await identify() else { return }  // shut down while waiting for the Bot API
        logger.info("telegram front ready", metadata: ["telegram.bot": "@\(me.username ?? botID)", "front.id": "\(configuration.frontID)"])
        var failures = 0
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let owner = "\(configuration.frontID)#\(UInt64.random(in: 1 ... .max))"
            let start = ContinuousClock.now
            do {
                if try await state.acquire(owner: owner, ttl: configuration.leaseDuration) {
                    failures = 0
                    logger.info("took the poller lease", metadata: ["front.id": "\(configuration.frontID)"])
                    do {
                        try await lead(owner: owner, me: me, lease: LeaseClock(start: start, duration: configuration.leaseDuration))
                    } catch {
                        try? await state.release(owner: owner, ttl: configuration.leaseDuration)
                        throw error
                    }
                    try? await state.release(owner: owner, ttl: configuration.leaseDuration)
                } else {
                    failures = 0
                    try await cancelWhenGracefulShutdown { try await self.state.waitForHandover(ttl: self.configuration.leaseDuration) }
                }
            } catch let error as ConfigurationError {
                throw error
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
                failures += 1
                logger.warning("cannot reach Redis for the poller lease; trying again", metadata: ["error": "\(error)"])
                await pause(failures)
            }
        }
    }

    /// Checks the token with `getMe`, retrying while the Bot API cannot be reached; nil
    /// when a shutdown comes first.
    private func identify() async throws -> BotUser? {
        var failures = 0
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let error: BotAPIError
            do {
                return try await cancelWhenGracefulShutdown { try await self.bot.getMe() }
            } catch let failure as BotAPIError {
                error = failure
            } catch {
                return nil  // cancelled by the shutdown
            }
            switch error.kind {
            case .unauthorized:
                throw ConfigurationError(setting: "TELEGRAM_BOT_TOKEN", reason: "the Bot API refused TELEGRAM_BOT_TOKEN (401 Unauthorized)")
            case .notFound:
                throw ConfigurationError(setting: "TELEGRAM_API_URL", reason: "the Bot API at TELEGRAM_API_URL does not know getMe (404): check the URL")
            case .cancelled:
                return nil
            default:
                failures += 1
                logger.warning("cannot reach the Bot API; trying again", metadata: ["error": "\(error)"])
                await pause(failures)
            }
        }
        return nil
    }

    /// Holds the lease: renews it, polls, delivers. Returns on graceful shutdown (after the
    /// sends in progress) or when the lease is lost.
    /// - Throws: `ConfigurationError` when the Bot API stops accepting the token.
    private func lead(owner: String, me: BotUser, lease: LeaseClock) async throws {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.keepLease(owner: owner, lease: lease) }
                group.addTask { try await self.work(owner: owner, me: me, lease: lease) }
                try await group.next()
                group.cancelAll()
            }
        } catch is LeadershipLost {
            logger.warning("lost the poller lease; another front carries on", metadata: ["front.id": "\(configuration.frontID)"])
        } catch let error as ConfigurationError {
            throw error
        } catch {
            if !(error is CancellationError) { logger.error("the poller stopped", metadata: ["error": "\(error)"]) }
        }
    }

    /// Renews the lease every third of its length until cancelled.
    /// - Throws: `LeadershipLost` when the lease is gone or cannot be renewed in time.
    private func keepLease(owner: String, lease: LeaseClock) async throws {
        let interval = configuration.leaseDuration / 3
        while true {
            try await Task.sleep(for: interval)
            let start = ContinuousClock.now
            do {
                guard try await state.renew(owner: owner, ttl: configuration.leaseDuration) else { throw LeadershipLost() }
                lease.renewed(at: start)
            } catch let error as LeadershipLost {
                throw error
            } catch {
                if Task.isCancelled { throw CancellationError() }
                logger.warning("cannot renew the poller lease", metadata: ["error": "\(error)"])
                if !lease.isValid { throw LeadershipLost() }
            }
        }
    }

    /// Sleeps a backoff after `failures` failures in a row (0.5 s doubling to 10 s, full
    /// jitter), ending early on shutdown.
    func pause(_ failures: Int) async {
        let ceiling = min(10_000, 500 << min(failures - 1, 5))
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(Int.random(in: 100...ceiling))) }
    }
}
