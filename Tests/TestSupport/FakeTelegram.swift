import Foundation

/// `Tests/Fakes/fake_telegram.py` running on a free loopback port: a fake Telegram Bot API
/// server that tests feed user messages to, script failures into, and read back what the bot
/// sent from. See Tests/Fakes/README.md for its behaviour and control API.
public final class FakeTelegram: Sendable {
    /// The token the fake accepts unless `start(token:)` names another.
    public static let defaultToken = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"

    /// The one bot token the fake accepts; any other gets 401 Unauthorized.
    public let token: String
    private let server: FakeServerProcess

    /// Starts the fake and waits for its READY line.
    public static func start(token: String = FakeTelegram.defaultToken) async throws -> FakeTelegram {
        FakeTelegram(server: try await FakeServerProcess.start("fake_telegram.py", arguments: ["--token", token]),
                     token: token)
    }

    private init(server: FakeServerProcess, token: String) {
        self.server = server
        self.token = token
    }

    public var port: Int { server.port }
    /// `http://127.0.0.1:<port>`: the value for `TELEGRAM_API_URL`.
    public var apiURL: String { server.baseURL }

    /// `<apiURL>/bot<token>/<method>`.
    public func methodURL(_ method: String) -> String { "\(apiURL)/bot\(token)/\(method)" }

    /// Environment variables pointing a bot at this fake.
    public func environment() -> [String: String] {
        ["TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_URL": apiURL]
    }

    /// Injects one user text message and wakes any waiting `getUpdates`; the chat is the
    /// user's private chat unless `chatID` is given.
    @discardableResult
    public func sendUpdate(text: String, userID: Int64 = 42, chatID: Int64? = nil,
                           username: String = "alice") async throws -> (updateID: Int64, messageID: Int64) {
        let ids = try await sendUpdates([text], userID: userID, chatID: chatID, username: username)
        return ids[0]
    }

    /// Injects several user text messages from one user at once, in order.
    @discardableResult
    public func sendUpdates(_ texts: [String], userID: Int64 = 42, chatID: Int64? = nil,
                            username: String = "alice") async throws -> [(updateID: Int64, messageID: Int64)] {
        let items: [[String: Any]] = texts.map { text in
            var item: [String: Any] = ["text": text, "user_id": userID, "username": username]
            if let chatID { item["chat_id"] = chatID }
            return item
        }
        return try await sendUpdates(items: items).map { ids in
            guard let messageID = ids.messageID else { throw TestSetupError("no message id for update \(ids.updateID)") }
            return (ids.updateID, messageID)
        }
    }

    /// Injects updates given as the README's ITEM objects: `{"text", "user_id", "chat_id",
    /// "username", "first_name", "chat_type", "title"}` or `{"update": {raw update}}`. The
    /// message id is nil for a raw update without one.
    @discardableResult
    public func sendUpdates(items: [[String: Any]]) async throws -> [(updateID: Int64, messageID: Int64?)] {
        let answer = try ParsedJSON.parse(String(decoding: try await server.post("/_control/updates", ["updates": items]),
                                                 as: UTF8.self))
        guard let updateIDs = answer["update_ids"]?.array?.compactMap(\.integer),
              let messageIDs = answer["message_ids"]?.array, updateIDs.count == items.count,
              messageIDs.count == items.count else {
            throw TestSetupError("fake_telegram.py answered \(answer) to \(items.count) updates")
        }
        return zip(updateIDs, messageIDs).map { ($0, $1.integer) }
    }

    /// Injects a press of the inline button with `data` under the bot's message `messageID`
    /// by `userID` (a `callback_query` update) and wakes any waiting `getUpdates`.
    @discardableResult
    public func pressButton(messageID: Int64, data: String, userID: Int64 = 42,
                            username: String = "alice") async throws -> (updateID: Int64, queryID: String) {
        let answer = try ParsedJSON.parse(String(decoding: try await server.post("/_control/callback_query", [
            "message_id": messageID, "data": data, "user_id": userID, "username": username]), as: UTF8.self))
        guard let updateID = answer["update_id"]?.integer, let queryID = answer["callback_query_id"]?.string else {
            throw TestSetupError("fake_telegram.py answered \(answer) to a button press")
        }
        return (updateID, queryID)
    }

    /// Every injected button press: `{"id", "user_id", "data", "message_id", "answered",
    /// "text", "show_alert", "time_ms", "answered_ms"}`.
    public func callbackQueries() async throws -> [[String: Any]] {
        try await server.list("/_control/callbacks")
    }

    /// Queues scripted responses for a Bot API method (`sendPhoto`, `editMessageText`, ...);
    /// each is a JSON object of the README's RESPONSE fields: `status`, `description`,
    /// `retry_after`, `delay_ms`, `drop`.
    public func script(_ method: String, _ responses: [[String: Any]]) async throws {
        try await server.post("/_control/script", ["method": method, "responses": responses])
    }

    /// Turns on flood control for `editMessageText` (0 turns it off): an edit of the same
    /// message sooner than this after its last successful edit gets 429 retry after 1.
    public func setLimits(editMinIntervalMilliseconds: Int) async throws {
        try await server.post("/_control/limits", ["edit_min_interval_ms": editMinIntervalMilliseconds])
    }

    /// Clears updates, messages, calls, scripts and limits; waiting polls get `[]`. Update
    /// ids start again at `firstUpdateID` (default 1), message ids at 1000.
    public func reset(firstUpdateID: Int64? = nil) async throws {
        let fields: [String: Any] = firstUpdateID.map { ["first_update_id": $0] } ?? [:]
        try await server.post("/_control/reset", fields)
    }

    /// The Bot API calls received, in arrival order (of one method, or all when nil): each
    /// `{"seq", "method", "params", "photo" (sendPhoto only), "time_ms", "end_ms", "status",
    /// "description", "outcome", ...}`.
    public func calls(_ method: String? = nil) async throws -> [[String: Any]] {
        try await server.list("/_control/calls" + (method.map { "?method=\($0)" } ?? ""))
    }

    /// The messages the bot sent, in sending order, in their current state: each
    /// `{"message_id", "chat_id", "kind", "text", "caption", "photo", "reply_to", "edits",
    /// "history", "deleted", ...}`.
    public func messages(chatID: Int64? = nil) async throws -> [[String: Any]] {
        try await server.list("/_control/messages" + (chatID.map { "?chat_id=\($0)" } ?? ""))
    }

    /// `{"pending_updates", "confirmed_below", "polling", "flood_refusals", "next_update_id", ...}`.
    public func state() async throws -> [String: Any] {
        try await server.object("/_control/state")
    }

    /// Waits until `condition` holds, checking every 50 ms.
    /// - Throws: `TestSetupError` naming `what` when `timeout` passes first.
    public func waitFor(_ what: String, timeout: Duration = .seconds(20),
                        _ condition: @Sendable () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try await condition() { return }
            guard ContinuousClock.now < deadline else {
                throw TestSetupError("\(what): not seen within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits until a `getUpdates` long poll is waiting at the fake (the bot is up and idle).
    public func waitUntilPolling(timeout: Duration = .seconds(20)) async throws {
        try await waitFor("a getUpdates long poll waiting", timeout: timeout) { [self] in
            ((try await state()["polling"] as? NSNumber)?.intValue ?? 0) > 0
        }
    }
}
