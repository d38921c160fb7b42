import ImageQueue
import Logging
import RedisClient
import ServiceLifecycle

extension TelegramFront {
    /// A job accepted from a command, whose delivery starts now.
    struct Accepted: Sendable {
        let record: DeliveryRecord
        let events: AsyncThrowingStream<StatusEvent, any Error>
        let shown: String?
    }

    /// The poller's work: resume the pending deliveries, then long-poll and handle updates
    /// until a graceful shutdown; deliveries started meanwhile run beside it.
    func work(owner: String, me: BotUser, lease: LeaseClock) async throws {
        let movement = QueueMovement()
        let context = DeliveryContext(owner: owner, lease: lease, movement: movement,
                                      pacer: ChatPacer(interval: configuration.chatEditInterval))
        try await withThrowingTaskGroup(of: Void.self) { followers in
            followers.addTask {
                await movement.run(subscriber: self.subscriber, keys: self.client.configuration.keys, models: self.models, logger: self.logger)
            }
            // Returns once polling has stopped and every delivery has ended (on shutdown
            // they finish the sends in progress and stop waiting for the rest).
            try await withThrowingDiscardingTaskGroup { group in
                let pending = try await state.pending()
                if !pending.isEmpty { logger.info("resuming pending deliveries", metadata: ["deliveries": "\(pending.count)"]) }
                for record in pending {
                    group.addTask { await self.deliver(record, events: nil, shown: nil, context: context) }
                }
                try await poll(owner: owner, me: me, lease: lease) { accepted in
                    group.addTask { await self.deliver(accepted.record, events: accepted.events, shown: accepted.shown, context: context) }
                }
            }
            followers.cancelAll()
        }
    }

    /// The long-poll loop. Each update is handled and committed before the next; a failure
    /// (Redis or the Bot API unreachable) leaves the offset where it was, so the update is
    /// fetched and handled again after a backoff.
    private func poll(owner: String, me: BotUser, lease: LeaseClock, start: (Accepted) -> Void) async throws {
        var offset = try await state.offset()
        var failures = 0
        while !Task.isShuttingDownGracefully {
            try Task.checkCancellation()
            let updates: [BotUpdate]
            do {
                let from = offset
                updates = try await cancelWhenGracefulShutdown {
                    try await self.bot.getUpdates(offset: from, timeout: self.configuration.pollTimeout)
                }
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                if let error = error as? BotAPIError, error.kind == .unauthorized {
                    throw ConfigurationError(setting: "TELEGRAM_BOT_TOKEN", reason: "the Bot API refused TELEGRAM_BOT_TOKEN (401 Unauthorized)")
                }
                failures += 1
                logger.warning("getUpdates failed; polling again after a pause", metadata: ["error": "\(error)"])
                if let wait = (error as? BotAPIError)?.retryAfter {
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                } else {
                    await pause(failures)
                }
                continue
            }
            do {
                for update in updates {
                    guard lease.isValid else { throw LeadershipLost() }
                    if let accepted = try await handle(update, owner: owner, me: me) { start(accepted) }
                    offset = update.updateID + 1
                }
                failures = 0
            } catch let error as LeadershipLost {
                throw error
            } catch {
                failures += 1
                logger.warning("an update could not be handled; it will be fetched again", metadata: ["error": "\(error)"])
                await pause(failures)
            }
        }
    }

    /// Handles one update: answers it, or queues its job. Commits the offset past it (with
    /// the job's delivery record) unless it throws.
    /// - Throws: `LeadershipLost`; a Redis failure (the update is handled again later).
    func handle(_ update: BotUpdate, owner: String, me: BotUser) async throws -> Accepted? {
        let next = update.updateID + 1
        guard let message = update.message, let text = message.text, let from = message.from, from.isBot != true,
              let command = ImageCommand.parse(text, botUsername: me.username) else {
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        var metadata: Logger.Metadata = ["telegram.update": "\(update.updateID)", "telegram.chat": "\(message.chat.id)"]
        if let allowed = configuration.allowedIDs, !allowed.contains(from.id), !allowed.contains(message.chat.id) {
            logger.info("refused a sender who is not on the allow-list", metadata: metadata)
            await reply(to: message, Replies.notAllowed)
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        guard case .generate(let model, let prompt) = command else {
            if case .usage(let problem) = command { await reply(to: message, Replies.usage(models: models, problem: problem)) }
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        let request = JobRequest(model: model, prompt: prompt, user: "tg:\(from.id)", enhance: configuration.enhance,
                                 idempotencyKey: "tg-\(botID)-\(update.updateID)",
                                 metadata: ["telegram_chat": "\(message.chat.id)", "telegram_message": "\(message.messageID)",
                                            "telegram_user": "\(from.id)"])
        let job: EnqueuedJob
        let events: AsyncThrowingStream<StatusEvent, any Error>
        do {
            (job, events) = try await client.enqueueAndWatch(request)
        } catch where error.code == .redis || error.code == .notReplicated {
            // Handled again later: the update's idempotency key keeps the repeat from
            // queueing a second job, and an unconfirmed one is confirmed then.
            throw error
        } catch {
            metadata["error"] = "\(error.code.rawValue)"
            logger.info("refused a command", metadata: metadata)
            await reply(to: message, Replies.refusal(error, models: models))
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        metadata["job.id"] = "\(job.id)"
        var record = DeliveryRecord(job: job.id, chat: message.chat.id, replyTo: message.messageID, user: from.id, update: update.updateID)
        let queuedText = Replies.status(forQueued: model, position: job.position)
        var shown: String?
        do {
            record.statusMessage = try await bot.sendMessage(chat: message.chat.id, text: queuedText, replyTo: message.messageID,
                                                             retry: .reply).messageID
            shown = queuedText
        } catch {
            // The delivery sends the status message later; the job is queued all the same.
            logger.warning("could not send the status message", metadata: metadata.merging(["error": "\(error)"]) { $1 })
        }
        let created: Bool
        do {
            created = try await state.commit(owner: owner, offset: next, record: record)
        } catch {
            // The update will be handled again (the job is found by its idempotency key) and
            // will send a new status message: withdraw this one.
            if let statusMessage = record.statusMessage { try? await bot.deleteMessage(chat: record.chat, message: statusMessage) }
            throw error
        }
        guard created else {
            // Another poller recorded this job already (it handled the same update): it
            // delivers; this status message would be a duplicate.
            if let statusMessage = record.statusMessage { try? await bot.deleteMessage(chat: record.chat, message: statusMessage) }
            return nil
        }
        logger.info("queued a job", metadata: metadata)
        return Accepted(record: record, events: events, shown: shown)
    }

    /// Answers a message; a failure is logged, not thrown (a user who blocked the bot must
    /// not stall everyone else's updates).
    func reply(to message: BotMessage, _ text: String) async {
        do {
            _ = try await bot.sendMessage(chat: message.chat.id, text: text, replyTo: message.messageID, retry: .reply)
        } catch {
            logger.warning("could not answer a message", metadata: ["telegram.chat": "\(message.chat.id)", "error": "\(error)"])
        }
    }
}
