import CurlHTTP
import FoundationEssentials
import ImageQueue
import Logging

/// A client of the Telegram Bot API over libcurl: the calls the front makes, each with its
/// retry rule. Flood control (429) is honoured: the call waits the `retry_after` Telegram
/// asked for and tries again; other transient failures are retried with backoff.
///
/// The token sits in every URL's path (`<api>/bot<token>/<method>`); no URL is ever put in
/// an error or a log line, and libcurl's own messages are redacted by `CurlHTTP`.
public struct BotAPI: Sendable {
    /// How a call is retried.
    public struct RetryPolicy: Sendable {
        /// Tries in all for transient failures other than flood control.
        public var attempts: Int
        /// Longest total wait spent on flood control before giving up.
        public var maxFloodWait: Duration
        /// First backoff delay; doubled each try, with full jitter.
        public var baseDelay: Duration

        /// Creates a policy.
        public init(attempts: Int, maxFloodWait: Duration, baseDelay: Duration = .milliseconds(500)) {
            self.attempts = attempts
            self.maxFloodWait = maxFloodWait
            self.baseDelay = baseDelay
        }

        /// One try, no waiting (the poll loop has its own backoff).
        public static let once = RetryPolicy(attempts: 1, maxFloodWait: .zero)
        /// Status edits: a few tries; a stale status is better than a late one.
        public static let edit = RetryPolicy(attempts: 2, maxFloodWait: .seconds(30))
        /// Answers to commands, sent from the poll loop: a few tries, without holding up
        /// everyone else's updates for long.
        public static let reply = RetryPolicy(attempts: 3, maxFloodWait: .seconds(30))
        /// Photos and final answers: must arrive.
        public static let delivery = RetryPolicy(attempts: 5, maxFloodWait: .seconds(300))
    }

    private let token: String
    private let apiURL: String
    private let http: HTTPClient
    private let requestTimeout: Duration
    private let logger: Logger

    /// Creates a client for a bot.
    /// - Parameters:
    ///   - apiURL: the Bot API server, `https://api.telegram.org` or a local one.
    ///   - requestTimeout: the longest an ordinary call (not a long poll) may take.
    public init(token: String, apiURL: String, http: HTTPClient = HTTPClient(), requestTimeout: Duration = .seconds(60),
                logger: Logger = Logger(label: "imagequeue.telegram.api")) {
        self.token = token
        self.apiURL = apiURL.hasSuffix("/") ? String(apiURL.dropLast()) : apiURL
        self.http = http
        self.requestTimeout = requestTimeout
        self.logger = logger
    }

    // MARK: - Methods

    /// The bot itself; checks the token.
    /// - Throws: `BotAPIError` (`.unauthorized` for a bad token).
    public func getMe() async throws(BotAPIError) -> BotUser {
        try await call("getMe", json: [:], retry: .once)
    }

    /// Waits up to `timeout` for updates from `offset` on; asking with an offset confirms
    /// every update before it.
    /// - Throws: `BotAPIError`, not retried (the caller's loop backs off).
    public func getUpdates(offset: Int64, timeout: Duration, limit: Int = 100) async throws(BotAPIError) -> [BotUpdate] {
        let seconds = max(0, Int(timeout.components.seconds))
        return try await call("getUpdates", json: ["offset": .int(offset), "timeout": .int(Int64(seconds)),
                                                   "limit": .int(Int64(limit)), "allowed_updates": .array([.string("message"), .string("callback_query")])],
                              retry: .once, timeout: timeout + .seconds(15))
    }

    /// Sends a text message, as a reply when `replyTo` is given (still sent if that message
    /// is gone), with a row of inline buttons when `buttons` is not empty.
    /// - Throws: `BotAPIError` once the policy's tries are spent.
    public func sendMessage(chat: Int64, text: String, replyTo: Int64? = nil, buttons: [InlineButton] = [],
                            retry: RetryPolicy = .delivery) async throws(BotAPIError) -> BotMessage {
        var fields: [String: JSONValue] = ["chat_id": .int(chat), "text": .string(text)]
        if let replyTo { fields["reply_parameters"] = Self.replyParameters(replyTo) }
        if !buttons.isEmpty { fields["reply_markup"] = Self.keyboard(buttons) }
        return try await call("sendMessage", json: fields, retry: retry)
    }

    /// Replaces a message's text and its inline buttons: the message keeps `buttons` only
    /// (none when empty: Telegram drops a keyboard an edit does not repeat). An edit that
    /// changes nothing counts as done.
    /// - Throws: `BotAPIError` (`isMessageGone` when the user deleted it).
    public func editMessageText(chat: Int64, message: Int64, text: String, buttons: [InlineButton] = [],
                                retry: RetryPolicy = .edit) async throws(BotAPIError) {
        var fields: [String: JSONValue] = ["chat_id": .int(chat), "message_id": .int(message), "text": .string(text)]
        if !buttons.isEmpty { fields["reply_markup"] = Self.keyboard(buttons) }
        do {
            let _: BotMessage = try await call("editMessageText", json: fields, retry: retry)
        } catch where error.isNotModified {
            return
        }
    }

    /// Answers a button press at once, with a short notice (`alert`: a dialog the user
    /// dismisses) or none; this stops the spinner on the user's button.
    /// - Throws: `BotAPIError` (`.badRequest` when the query is too old or answered already).
    public func answerCallbackQuery(_ id: String, text: String? = nil, alert: Bool = false) async throws(BotAPIError) {
        var fields: [String: JSONValue] = ["callback_query_id": .string(id)]
        if let text, !text.isEmpty { fields["text"] = .string(text) }
        if alert { fields["show_alert"] = .bool(true) }
        let _: Bool = try await call("answerCallbackQuery", json: fields, retry: .once)
    }

    /// Deletes a message the bot sent.
    /// - Throws: `BotAPIError`.
    public func deleteMessage(chat: Int64, message: Int64) async throws(BotAPIError) {
        let _: Bool = try await call("deleteMessage", json: ["chat_id": .int(chat), "message_id": .int(message)], retry: .edit)
    }

    /// Uploads an image as a photo (multipart/form-data), with a caption, as a reply.
    /// - Throws: `BotAPIError` once the policy's tries are spent.
    public func sendPhoto(chat: Int64, image: [UInt8], contentType: String, fileName: String, caption: String?,
                          replyTo: Int64?, buttons: [InlineButton] = [], retry: RetryPolicy = .delivery) async throws(BotAPIError) -> BotMessage {
        var form = MultipartForm()
        form.add("chat_id", String(chat))
        if let caption, !caption.isEmpty { form.add("caption", caption) }
        if let replyTo { form.add("reply_parameters", Self.text(Self.replyParameters(replyTo))) }
        if !buttons.isEmpty { form.add("reply_markup", Self.text(Self.keyboard(buttons))) }
        form.addFile("photo", fileName: fileName, contentType: contentType, bytes: image)
        return try await call("sendPhoto", body: form.body(), contentType: form.contentType, retry: retry)
    }

    /// One image to upload in an album.
    public struct Upload: Sendable {
        /// The image's bytes.
        public var bytes: [UInt8]
        /// `image/png` or `image/jpeg`.
        public var contentType: String
        /// The file name Telegram is given.
        public var fileName: String

        /// Creates an upload.
        public init(bytes: [UInt8], contentType: String, fileName: String) {
            self.bytes = bytes
            self.contentType = contentType
            self.fileName = fileName
        }
    }

    /// Uploads 2 to 10 images as one album (multipart/form-data: a `media` array of photos
    /// naming the file parts `attach://photo<k>`), captioned once (on the first, which is
    /// how Telegram shows an album's caption), as a reply. An album carries no buttons.
    /// Returns the album's messages, in order.
    /// - Throws: `BotAPIError` once the policy's tries are spent.
    public func sendMediaGroup(chat: Int64, images: [Upload], caption: String?, replyTo: Int64?,
                               retry: RetryPolicy = .delivery) async throws(BotAPIError) -> [BotMessage] {
        var form = MultipartForm()
        form.add("chat_id", String(chat))
        if let replyTo { form.add("reply_parameters", Self.text(Self.replyParameters(replyTo))) }
        var media: [JSONValue] = []
        for index in images.indices {
            var item: [String: JSONValue] = ["type": .string("photo"), "media": .string("attach://photo\(index)")]
            if index == 0, let caption, !caption.isEmpty { item["caption"] = .string(caption) }
            media.append(.object(item))
        }
        form.add("media", Self.text(.array(media)))
        for (index, image) in images.enumerated() {
            form.addFile("photo\(index)", fileName: image.fileName, contentType: image.contentType, bytes: image.bytes)
        }
        return try await call("sendMediaGroup", body: form.body(), contentType: form.contentType, retry: retry)
    }

    private static func text(_ value: JSONValue) -> String {
        String(decoding: encode(value), as: UTF8.self)
    }

    /// `reply_markup` with one row of inline buttons.
    private static func keyboard(_ buttons: [InlineButton]) -> JSONValue {
        .object(["inline_keyboard": .array([.array(buttons.map { button in
            .object(["text": .string(button.text), "callback_data": .string(button.callbackData)])
        })])])
    }

    private static func encode(_ value: JSONValue) -> [UInt8] {
        (try? JSONEncoder().encode(value)).map { Array($0) } ?? Array("{}".utf8)
    }

    private static func replyParameters(_ message: Int64) -> JSONValue {
        .object(["message_id": .int(message), "allow_sending_without_reply": .bool(true)])
    }

    // MARK: - Calls

    private func call<T: Decodable>(_ method: String, json fields: [String: JSONValue], retry: RetryPolicy,
                                    timeout: Duration? = nil) async throws(BotAPIError) -> T {
        try await call(method, body: Self.encode(.object(fields)), contentType: "application/json",
                       retry: retry, timeout: timeout)
    }

    private func call<T: Decodable>(_ method: String, body: [UInt8], contentType: String, retry: RetryPolicy,
                                    timeout: Duration? = nil) async throws(BotAPIError) -> T {
        var failures = 0
        var floodWaited = Duration.zero
        while true {
            do {
                return try await once(method, body: body, contentType: contentType, timeout: timeout ?? requestTimeout)
            } catch {
                let delay: Duration
                if error.kind == .rateLimited {
                    delay = error.retryAfter ?? .seconds(1)
                    guard floodWaited + delay <= retry.maxFloodWait else { throw error }
                    floodWaited += delay
                } else {
                    failures += 1
                    guard error.isTransient, failures < retry.attempts else { throw error }
                    let ceiling = retry.baseDelay.wholeMilliseconds << min(failures - 1, 6)
                    delay = .milliseconds(Int64.random(in: 0...max(1, ceiling)))
                }
                logger.info("Bot API call failed; trying again", metadata: [
                    "telegram.method": "\(method)", "error": "\(error.kind.rawValue): \(error.detail)",
                    "retry.delay_ms": "\(delay.wholeMilliseconds)"])
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    throw BotAPIError(.cancelled, method: method, "cancelled")
                }
            }
        }
    }

    private func once<T: Decodable>(_ method: String, body: [UInt8], contentType: String,
                                    timeout: Duration) async throws(BotAPIError) -> T {
        var request = HTTPRequest(method: "POST", url: "\(apiURL)/bot\(token)/\(method)",
                                  headers: [("Content-Type", contentType), ("Accept", "application/json")], body: body)
        request.timeout = timeout
        request.connectTimeout = .seconds(10)
        request.maxResponseBytes = 8 * 1024 * 1024
        let response: HTTPResponse
        do {
            response = try await http.send(request)
        } catch {
            switch error.kind {
            case .cancelled: throw BotAPIError(.cancelled, method: method, "cancelled")
            case .invalidURL: throw BotAPIError(.notFound, method: method, "TELEGRAM_API_URL is not a usable http(s) URL")
            default: throw BotAPIError(.network, method: method, Self.withoutToken(error.description, token: token))
            }
        }
        guard let envelope = try? JSONDecoder().decode(BotEnvelope<T>.self, from: Data(response.body)) else {
            throw BotAPIError(.serverError, method: method, "the Bot API answered HTTP \(response.status) with a body that is not its JSON")
        }
        if envelope.ok, let result = envelope.result { return result }
        let code = envelope.errorCode ?? response.status
        let detail = Self.withoutToken(envelope.description ?? "HTTP \(code)", token: token)
        switch code {
        case 401: throw BotAPIError(.unauthorized, method: method, detail)
        case 403: throw BotAPIError(.forbidden, method: method, detail)
        case 404: throw BotAPIError(.notFound, method: method, detail)
        case 409: throw BotAPIError(.conflict, method: method, detail)
        case 429: throw BotAPIError(.rateLimited, method: method, detail,
                                    retryAfter: .seconds(max(1, envelope.parameters?.retryAfter ?? 1)))
        case 400..<500: throw BotAPIError(.badRequest, method: method, detail)
        default: throw BotAPIError(.serverError, method: method, detail)
        }
    }

    /// A last guard: text that could echo the token (a proxy's error page, a description)
    /// never carries it on.
    static func withoutToken(_ text: String, token: String) -> String {
        guard !token.isEmpty else { return text }
        var result = text.replacing(token, with: "<token>")
        if let colon = token.firstIndex(of: ":") {
            let secret = String(token[token.index(after: colon)...])
            if secret.count >= 4 { result = result.replacing(secret, with: "<token>") }
        }
        return result
    }
}
