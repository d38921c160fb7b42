import FoundationEssentials

/// One incoming update from `getUpdates`. Only messages and button presses (callback
/// queries) matter to the front; an update of another kind, or one that cannot be read,
/// still has its id so it can be confirmed and skipped.
public struct BotUpdate: Decodable, Sendable, Equatable {
    /// The update's id; the next `getUpdates` offset is the highest seen plus one.
    public var updateID: Int64
    /// The new message, when the update is one.
    public var message: BotMessage?
    /// A press of one of the bot's inline buttons, when the update is one.
    public var callbackQuery: BotCallbackQuery?

    enum CodingKeys: String, CodingKey {
        case updateID = "update_id", message, callbackQuery = "callback_query"
    }

    /// Creates an update (for tests).
    public init(updateID: Int64, message: BotMessage?, callbackQuery: BotCallbackQuery? = nil) {
        self.updateID = updateID
        self.message = message
        self.callbackQuery = callbackQuery
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        updateID = try container.decode(Int64.self, forKey: .updateID)
        message = try? container.decodeIfPresent(BotMessage.self, forKey: .message)
        callbackQuery = try? container.decodeIfPresent(BotCallbackQuery.self, forKey: .callbackQuery)
    }
}

/// A press of an inline button under one of the bot's messages. It must be answered
/// (`answerCallbackQuery`) at once: the user's client shows a spinner until then, and
/// Telegram refuses answers that come too late.
public struct BotCallbackQuery: Decodable, Sendable, Equatable {
    /// The query's id, for the answer.
    public var id: String
    /// Who pressed the button.
    public var from: BotUser
    /// The message the button is under (absent for inline-mode messages; for a message too
    /// old to be read, only its id and chat).
    public var message: BotMessage?
    /// The button's `callback_data`.
    public var data: String?

    enum CodingKeys: String, CodingKey { case id, from, message, data }

    /// Creates a query (for tests).
    public init(id: String, from: BotUser, message: BotMessage?, data: String?) {
        self.id = id
        self.from = from
        self.message = message
        self.data = data
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        from = try container.decode(BotUser.self, forKey: .from)
        message = try? container.decodeIfPresent(BotMessage.self, forKey: .message)
        data = try? container.decodeIfPresent(String.self, forKey: .data)
    }
}

/// One inline button that sends `callbackData` (at most 64 bytes) back when pressed.
public struct InlineButton: Sendable, Equatable {
    /// The button's label.
    public var text: String
    /// What the press sends back, in the callback query's `data`.
    public var callbackData: String

    /// Creates a button.
    public init(text: String, callbackData: String) {
        self.text = text
        self.callbackData = callbackData
    }

    /// Telegram's limit on `callback_data`, in bytes.
    public static let maxCallbackDataBytes = 64
}

/// A message, as much of it as the front reads.
public struct BotMessage: Decodable, Sendable, Equatable {
    /// The message's id within its chat.
    public var messageID: Int64
    /// The sender (absent for channel posts).
    public var from: BotUser?
    /// The chat it was sent in.
    public var chat: BotChat
    /// Its text, for a text message.
    public var text: String?

    enum CodingKeys: String, CodingKey {
        case messageID = "message_id", from, chat, text
    }

    /// Creates a message (for tests).
    public init(messageID: Int64, from: BotUser?, chat: BotChat, text: String?) {
        self.messageID = messageID
        self.from = from
        self.chat = chat
        self.text = text
    }
}

/// A Telegram user or bot.
public struct BotUser: Decodable, Sendable, Equatable {
    /// The user's id.
    public var id: Int64
    /// Whether it is a bot.
    public var isBot: Bool?
    /// The @username, without the @.
    public var username: String?

    enum CodingKeys: String, CodingKey {
        case id, isBot = "is_bot", username
    }

    /// Creates a user (for tests).
    public init(id: Int64, isBot: Bool? = false, username: String? = nil) {
        self.id = id
        self.isBot = isBot
        self.username = username
    }
}

/// A chat: private, group, supergroup or channel.
public struct BotChat: Decodable, Sendable, Equatable {
    /// The chat's id (negative for groups).
    public var id: Int64
    /// `private`, `group`, `supergroup` or `channel`.
    public var type: String?

    /// Creates a chat (for tests).
    public init(id: Int64, type: String? = "private") {
        self.id = id
        self.type = type
    }
}

/// The envelope every Bot API answer comes in.
struct BotEnvelope<Result: Decodable>: Decodable {
    var ok: Bool
    var result: Result?
    var errorCode: Int?
    var description: String?
    var parameters: Parameters?

    struct Parameters: Decodable {
        var retryAfter: Int?

        enum CodingKeys: String, CodingKey { case retryAfter = "retry_after" }
    }

    enum CodingKeys: String, CodingKey {
        case ok, result, errorCode = "error_code", description, parameters
    }
}
