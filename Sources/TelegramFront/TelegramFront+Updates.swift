import ImageQueue
import Logging
import RedisClient
import ServiceLifecycle

extension TelegramFront {
    /// A job accepted from a command, whose delivery starts now.
    struct Accepted: Sendable {
        let record: DeliveryRecord
        let events: AsyncThrowingStream<StatusEvent, any Error>
        let shown: StatusView?
    }

    /// What a status message shows: its text and its buttons.
    struct StatusView: Sendable, Equatable {
        var text: String
        var buttons: [InlineButton] = []
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
        if let query = update.callbackQuery { return try await handle(query, update: update.updateID, owner: owner) }
        guard let message = update.message, let text = message.text, let from = message.from, from.isBot != true,
              let command = ImageCommand.parse(text, botUsername: me.username) else {
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        var metadata: Logger.Metadata = ["telegram.update": "\(update.updateID)", "telegram.chat": "\(message.chat.id)"]
        if !isAllowed(user: from.id, chat: message.chat.id) {
            logger.info("refused a sender who is not on the allow-list", metadata: metadata)
            await reply(to: message, Replies.notAllowed)
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        guard case .generate(let model, let prompt, let count) = command else {
            if case .usage(let problem) = command { await reply(to: message, Replies.usage(models: models, problem: problem)) }
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        let request = self.request(model: model, prompt: prompt, count: count, enhance: configuration.enhance, user: from.id,
                                   chat: message.chat.id, replyTo: message.messageID, update: update.updateID)
        guard let enqueued = try await enqueue(request, metadata: &metadata, refused: { await self.reply(to: message, $0) }) else {
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        let (job, events) = enqueued
        let record = DeliveryRecord(job: job.id, chat: message.chat.id, replyTo: message.messageID, user: from.id, update: update.updateID)
        return try await start(job, events: events, record: record, owner: owner, metadata: metadata)
    }

    /// Whether a sender may use the bot (the allow-list, when there is one, names the user
    /// or the chat).
    func isAllowed(user: Int64, chat: Int64) -> Bool {
        guard let allowed = configuration.allowedIDs else { return true }
        return allowed.contains(user) || allowed.contains(chat)
    }

    /// The request for a Telegram user's job: their user id, its origin in the metadata, the
    /// priority `TELEGRAM_PRIORITY_IDS` gives them (`high`, else `normal`), and the update's
    /// idempotency key (so an update handled twice queues one job).
    func request(model: String, prompt: String, count: Int, enhance: Bool, user: Int64, chat: Int64, replyTo: Int64,
                 update: Int64, extra: [String: String] = [:]) -> JobRequest {
        JobRequest(model: model, prompt: prompt, user: "tg:\(user)", enhance: enhance,
                   idempotencyKey: "tg-\(botID)-\(update)",
                   metadata: ["telegram_chat": "\(chat)", "telegram_message": "\(replyTo)", "telegram_user": "\(user)"]
                       .merging(extra) { $1 },
                   priority: configuration.priorityIDs.contains(user) ? .high : .normal, imageCount: count)
    }

    /// Enqueues a request and follows it; nil when the queue refused it (`refused` has been
    /// given the answer's text).
    /// - Throws: a Redis failure (the update is handled again: its idempotency key keeps the
    ///   repeat from queueing a second job, and an unconfirmed one is confirmed then).
    private func enqueue(_ request: JobRequest, metadata: inout Logger.Metadata, refused: (String) async -> Void) async throws
        -> (EnqueuedJob, AsyncThrowingStream<StatusEvent, any Error>)? {
        do {
            return try await client.enqueueAndWatch(request)
        } catch where error.code == .redis || error.code == .notReplicated {
            throw error
        } catch {
            metadata["error"] = "\(error.code.rawValue)"
            logger.info("refused a command", metadata: metadata)
            await refused(Replies.refusal(error, models: models))
            return nil
        }
    }

    /// Sends an accepted job's status message (with its Cancel button), then commits the
    /// update with the job's delivery record; returns the delivery to start, nil when another
    /// poller recorded it first.
    private func start(_ job: EnqueuedJob, events: AsyncThrowingStream<StatusEvent, any Error>, record: DeliveryRecord,
                       owner: String, metadata: Logger.Metadata) async throws -> Accepted? {
        var record = record
        var metadata = metadata
        metadata["job.id"] = "\(job.id)"
        let queued = StatusView(text: Replies.status(forQueued: job.model, position: job.position),
                                buttons: job.status.isTerminal ? [] : Self.cancelButtons(job.id))
        var shown: StatusView?
        do {
            record.statusMessage = try await bot.sendMessage(chat: record.chat, text: queued.text, replyTo: record.replyTo,
                                                             buttons: queued.buttons, retry: .reply).messageID
            shown = queued
        } catch {
            // The delivery sends the status message later; the job is queued all the same.
            logger.warning("could not send the status message", metadata: metadata.merging(["error": "\(error)"]) { $1 })
        }
        let created: Bool
        do {
            created = try await state.commit(owner: owner, offset: record.update + 1, record: record)
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

    // MARK: - Buttons

    /// What a button asks for: its `callback_data`, `c:<job id>` or `a:<job id>`.
    enum ButtonAction: Equatable {
        case cancel(String)
        case again(String)

        init?(_ data: String) {
            guard data.utf8.count <= InlineButton.maxCallbackDataBytes, data.count > 2 else { return nil }
            let job = String(data.dropFirst(2))
            switch data.prefix(2) {
            case "c:": self = .cancel(job)
            case "a:": self = .again(job)
            default: return nil
            }
        }

        var job: String {
            switch self {
            case .cancel(let job), .again(let job): job
            }
        }
    }

    /// The Cancel button of a job's status message (none when the id would not fit).
    static func cancelButtons(_ job: String) -> [InlineButton] {
        button(Replies.cancelButton, data: "c:" + job)
    }

    /// The Again button of a delivered job (none when the id would not fit).
    static func againButtons(_ job: String) -> [InlineButton] {
        button(Replies.againButton, data: "a:" + job)
    }

    private static func button(_ text: String, data: String) -> [InlineButton] {
        data.utf8.count <= InlineButton.maxCallbackDataBytes ? [InlineButton(text: text, callbackData: data)] : []
    }

    /// Handles a button press: answers it at once, then acts. Only the person who asked for
    /// the job may use its buttons. Cancel cancels the job (its delivery then shows it
    /// cancelled, without the button); Again queues the same prompt, model, enhancement and
    /// count as a new job, through the same path as a command (rate limit, idempotency key
    /// of the update, delivery record committed with the update).
    /// - Throws: `LeadershipLost`; a Redis failure (the update is handled again later: a
    ///   cancel repeated finds the job cancelled, an Again its job by the idempotency key).
    private func handle(_ query: BotCallbackQuery, update: Int64, owner: String) async throws -> Accepted? {
        let next = update + 1
        var metadata: Logger.Metadata = ["telegram.update": "\(update)", "telegram.user": "\(query.from.id)"]
        guard query.from.isBot != true, let action = query.data.flatMap(ButtonAction.init),
              let message = query.message else {
            await answer(query, nil)
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        metadata["telegram.chat"] = "\(message.chat.id)"
        metadata["job.id"] = "\(action.job.prefix(128))"
        if !isAllowed(user: query.from.id, chat: message.chat.id) {
            await answer(query, Replies.notAllowed, alert: true)
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        guard let info = try await job(action.job) else {
            await answer(query, Replies.buttonGone)
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        guard info.user == "tg:\(query.from.id)" else {
            logger.info("refused a button press by someone other than the asker", metadata: metadata)
            if case .cancel = action {
                await answer(query, Replies.notYoursToCancel)
            } else {
                await answer(query, Replies.notYoursToRepeat)
            }
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        }
        switch action {
        case .cancel(let job):
            guard !info.status.isTerminal else {
                await answer(query, Replies.alreadyEnded(info.status))
                _ = try await state.commit(owner: owner, offset: next, record: nil)
                return nil
            }
            await answer(query, Replies.cancelling)
            if let outcome = try await cancel(job) {
                logger.info("cancelled a job at its asker's request", metadata: metadata.merging(["job.was": "\(outcome.rawValue)"]) { $1 })
            }
            _ = try await state.commit(owner: owner, offset: next, record: nil)
            return nil
        case .again(let job):
            guard let prompt = info.prompt else {
                await answer(query, Replies.buttonGone)
                _ = try await state.commit(owner: owner, offset: next, record: nil)
                return nil
            }
            let request = self.request(model: info.model, prompt: prompt, count: info.imageCount, enhance: info.enhance,
                                       user: query.from.id, chat: message.chat.id, replyTo: message.messageID, update: update,
                                       extra: ["telegram_again_of": job])
            guard let enqueued = try await enqueue(request, metadata: &metadata, refused: { await self.answer(query, $0, alert: true) }) else {
                _ = try await state.commit(owner: owner, offset: next, record: nil)
                return nil
            }
            let (queued, events) = enqueued
            await answer(query, Replies.again)
            let record = DeliveryRecord(job: queued.id, chat: message.chat.id, replyTo: message.messageID, user: query.from.id,
                                        update: update)
            return try await start(queued, events: events, record: record, owner: owner, metadata: metadata)
        }
    }

    /// The job a button names; nil when it does not exist (any more).
    /// - Throws: `ImageQueueError` `.redis`.
    private func job(_ id: String) async throws(ImageQueueError) -> JobInfo? {
        do {
            return try await client.inspector.status(id)
        } catch {
            if error.code == .notFound || error.code == .invalidJobID { return nil }
            throw error
        }
    }

    /// Cancels a job; nil when it ended (or vanished) meanwhile: its delivery shows how.
    /// - Throws: `ImageQueueError` `.redis`.
    private func cancel(_ id: String) async throws(ImageQueueError) -> ImageQueueClient.CancelOutcome? {
        do {
            return try await client.cancel(id)
        } catch {
            if error.code == .notQueued || error.code == .notFound { return nil }
            throw error
        }
    }

    /// Answers a button press; a failure (the query is too old, or was answered before this
    /// update was handled again) is logged, not thrown.
    func answer(_ query: BotCallbackQuery, _ text: String?, alert: Bool = false) async {
        do {
            try await bot.answerCallbackQuery(query.id, text: text, alert: alert)
        } catch {
            logger.info("could not answer a button press", metadata: ["telegram.user": "\(query.from.id)", "error": "\(error)"])
        }
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
