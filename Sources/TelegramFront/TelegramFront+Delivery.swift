import ImageQueue
import Logging
import ServiceLifecycle

extension TelegramFront {
    /// What every delivery of one poller shares.
    struct DeliveryContext: Sendable {
        /// The lease's owner token, for the fenced record updates.
        let owner: String
        let lease: LeaseClock
        let movement: QueueMovement
        let pacer: ChatPacer
    }

    private enum Input: Sendable {
        case event(StatusEvent)
        case queueMoved
        case failed(any Error)
        case stopping
    }

    /// A delivery stopped waiting (shutdown, or its event stream ended without an outcome);
    /// its record stays for the next poller.
    private struct DeliveryStopped: Error {}

    /// Delivers one job: edits its status message as it progresses, then sends the image
    /// (or the failure) and forgets the record. Failures (Redis or the Bot API unreachable)
    /// are retried after a backoff, from the job's stored state; on shutdown or a lost
    /// lease the record is left for the next poller.
    func deliver(_ record: DeliveryRecord, events: AsyncThrowingStream<StatusEvent, any Error>?, shown: StatusView?,
                 context: DeliveryContext) async {
        var record = record
        var events = events
        var failures = 0
        while !Task.isCancelled {
            do {
                try await deliverOnce(&record, events: events, shown: failures == 0 ? shown : nil, context: context)
                return
            } catch is LeadershipLost {
                return
            } catch is CancellationError {
                return
            } catch is DeliveryStopped {
                return
            } catch {
                if Task.isShuttingDownGracefully { return }
                failures += 1
                events = nil
                logger.warning("a delivery failed; trying again", metadata: ["job.id": "\(record.job)", "error": "\(error)"])
                await pause(failures)
            }
        }
    }

    private func deliverOnce(_ record: inout DeliveryRecord, events: AsyncThrowingStream<StatusEvent, any Error>?, shown: StatusView?,
                             context: DeliveryContext) async throws {
        let (texts, feed) = AsyncStream<StatusView>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let snapshot = record
        async let edited = showStatus(texts, record: snapshot, shown: shown, context: context)
        let outcome: Result<Bool, any Error>
        do {
            do {
                let final = try await follow(snapshot, events: events, texts: feed, context: context)
                outcome = .success(try await conclude(snapshot, final: final, texts: feed, context: context))
            } catch is JobGone {
                feed.yield(StatusView(text: Replies.jobGone))
                outcome = .success(false)
            }
        } catch {
            outcome = .failure(error)
        }
        feed.finish()
        record = await edited
        // A text outcome is forgotten once shown (showing it again would only repeat an edit).
        if try outcome.get() == false { try await state.finish(job: record.job) }
    }

    /// Shows the job's progress until it ends; returns its terminal event. While the job
    /// waits, its position is read again whenever its model's queue moves (at most once per
    /// edit interval).
    private func follow(_ record: DeliveryRecord, events: AsyncThrowingStream<StatusEvent, any Error>?,
                        texts: AsyncStream<StatusView>.Continuation, context: DeliveryContext) async throws -> StatusEvent {
        let model = try JobID(record.job).model
        let cancel = Self.cancelButtons(record.job)
        let stream = events ?? client.watch(record.job)
        let (inputs, feed) = AsyncStream<Input>.makeStream()
        let interval = configuration.editInterval
        return try await withThrowingTaskGroup(of: Void.self) { pumps in
            defer { pumps.cancelAll() }
            pumps.addTask {
                do {
                    for try await event in stream { feed.yield(.event(event)) }
                    feed.yield(.stopping)
                } catch {
                    feed.yield(.failed(error))
                }
            }
            pumps.addTask {
                for await _ in context.movement.changes(of: model) {
                    feed.yield(.queueMoved)
                    try? await Task.sleep(for: interval)
                }
            }
            pumps.addTask {
                try? await gracefulShutdown()
                feed.yield(.stopping)
            }
            var waiting: StatusEvent?
            for await input in inputs {
                switch input {
                case .event(let event):
                    if event.status.isTerminal { return event }
                    waiting = event.status == .queued ? event : nil
                    texts.yield(StatusView(text: Replies.status(event), buttons: cancel))
                case .queueMoved:
                    if let waiting, let position = try? await client.inspector.position(record.job) {
                        texts.yield(StatusView(text: Replies.status(waiting, position: position), buttons: cancel))
                    }
                case .failed(let error):
                    if let error = error as? ImageQueueError, error.code == .notFound || error.code == .invalidJobID {
                        // The job is gone (purged or expired): there is nothing to deliver.
                        logger.warning("a pending delivery's job no longer exists", metadata: ["job.id": "\(record.job)"])
                        throw JobGone()
                    }
                    throw error
                case .stopping:
                    throw DeliveryStopped()
                }
            }
            throw CancellationError()
        }
    }

    /// The job is over: send the image (or say why not) and the final status line. Returns
    /// true when the record is already forgotten: right after the photo, so that nothing but
    /// that one Redis write stands between sending it and never sending it again.
    ///
    /// One image is sent as a photo with an Again button; several as one album (captioned
    /// once), and since an album carries no buttons, the Again button goes on the status
    /// message's final line.
    private func conclude(_ record: DeliveryRecord, final: StatusEvent, texts: AsyncStream<StatusView>.Continuation,
                          context: DeliveryContext) async throws -> Bool {
        guard final.status == .completed else {
            texts.yield(StatusView(text: Replies.status(final)))
            return false
        }
        let info = try await client.inspector.status(record.job)
        let count = max(1, info.result?.allImages.count ?? 1)
        var images: [BotAPI.Upload] = []
        for index in 0..<count {
            switch await readImage(record.job, index: index) {
            case .success(let found):
                let name = record.job + (count > 1 ? ".\(index + 1)" : "") + (found.contentType == "image/jpeg" ? ".jpg" : ".png")
                images.append(BotAPI.Upload(bytes: found.bytes, contentType: found.contentType, fileName: name))
            case .failure(let error):
                guard error.code == .notFound else { throw error }
                logger.warning("a finished image cannot be read here", metadata: ["job.id": "\(record.job)", "error": "\(error.message)"])
                texts.yield(StatusView(text: Replies.undeliverable("the image is no longer available.")))
                return false
            }
        }
        // Sending is the step that must happen once: only while the lease is surely ours.
        guard context.lease.isValid else { throw LeadershipLost() }
        let prompt = info.enhancedPrompt ?? final.enhancedPrompt ?? info.prompt ?? ""
        let again = Self.againButtons(record.job)
        let sent = await send(record, images: images, caption: Replies.caption(prompt), buttons: again)
        if case .failure(let error) = sent {
            switch error.kind {
            case .badRequest:
                logger.warning("Telegram refused the image", metadata: ["job.id": "\(record.job)", "error": "\(error)"])
                texts.yield(StatusView(text: Replies.undeliverable(error.detail)))
                return false
            case .forbidden:
                logger.warning("the chat no longer accepts the bot's messages; dropping the delivery",
                               metadata: ["job.id": "\(record.job)", "error": "\(error)"])
                return false
            default:
                throw error
            }
        }
        logger.info("delivered an image", metadata: ["job.id": "\(record.job)", "telegram.chat": "\(record.chat)", "images": "\(count)"])
        await forget(record.job)
        let seconds = info.finishedAt.flatMap { finished in info.enqueuedAt.map { (finished - $0 + 500) / 1000 } }
        texts.yield(StatusView(text: Replies.done(seconds: seconds), buttons: images.count > 1 ? again : []))
        return true
    }

    /// Deletes a delivered job's record, trying until Redis answers: a record left behind
    /// would send the photo again. Gives up only when the task is cancelled, or after a few
    /// tries once a shutdown has begun (and says so).
    private func forget(_ job: String) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await state.finish(job: job)
                return
            } catch {
                failures += 1
                if Task.isShuttingDownGracefully && failures >= 5 { break }
                logger.warning("cannot forget a delivered job yet", metadata: ["job.id": "\(job)", "error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(min(5000, 200 << min(failures, 5))))
            }
        }
        logger.error("a delivered job is still recorded; its photo may be sent again", metadata: ["job.id": "\(job)"])
    }

    private func readImage(_ job: String, index: Int) async -> Result<(bytes: [UInt8], contentType: String), ImageQueueError> {
        do {
            return .success(try await client.inspector.result(job, index: index))
        } catch {
            return .failure(error)
        }
    }

    /// Sends the images: one as a photo with `buttons`, several as one album.
    private func send(_ record: DeliveryRecord, images: [BotAPI.Upload], caption: String, buttons: [InlineButton]) async -> Result<Void, BotAPIError> {
        do {
            if images.count == 1, let image = images.first {
                _ = try await bot.sendPhoto(chat: record.chat, image: image.bytes, contentType: image.contentType, fileName: image.fileName,
                                            caption: caption, replyTo: record.replyTo, buttons: buttons)
            } else {
                _ = try await bot.sendMediaGroup(chat: record.chat, images: images, caption: caption, replyTo: record.replyTo)
            }
            return .success(())
        } catch {
            return .failure(error)
        }
    }

    /// Shows the latest text (and buttons) on the job's status message, at most once per
    /// edit interval, sending the message first when there is none yet. Returns the record,
    /// with the status message's id once there is one.
    private func showStatus(_ views: AsyncStream<StatusView>, record: DeliveryRecord, shown: StatusView?,
                            context: DeliveryContext) async -> DeliveryRecord {
        var record = record
        var shown = shown
        var gone = false
        // A status message sent a moment ago counts as the last edit.
        if shown != nil { try? await Task.sleep(for: configuration.editInterval) }
        for await view in views where view != shown && !gone {
            await context.pacer.waitForTurn(in: record.chat)
            do {
                if let message = record.statusMessage {
                    try await bot.editMessageText(chat: record.chat, message: message, text: view.text, buttons: view.buttons)
                } else {
                    record.statusMessage = try await bot.sendMessage(chat: record.chat, text: view.text, replyTo: record.replyTo,
                                                                     buttons: view.buttons, retry: .edit).messageID
                    try? await state.update(owner: context.owner, record: record)
                }
                shown = view
            } catch where error.isMessageGone {
                gone = true  // the user deleted the status message: stop editing it
            } catch {
                logger.info("could not update a status message", metadata: ["job.id": "\(record.job)", "error": "\(error)"])
            }
            try? await Task.sleep(for: configuration.editInterval)
        }
        return record
    }
}

/// The job of a pending delivery no longer exists (purged, or expired).
private struct JobGone: Error {}
