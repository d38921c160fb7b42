/// The Telegram front's settings as typed values, with the defaults a deployment wants (the
/// command line reads them from the environment).
public struct TelegramConfiguration: Sendable {
    /// The bot token from @BotFather (`<bot id>:<secret>`). Never logged.
    public var token: String
    /// The Bot API server.
    public var apiURL = "https://api.telegram.org"
    /// When set, only these user or chat ids are served.
    public var allowedIDs: Set<Int64>?
    /// Telegram users whose jobs are queued with priority `high` (everyone else's `normal`).
    public var priorityIDs: Set<Int64> = []
    /// How long one `getUpdates` long poll waits for news.
    public var pollTimeout: Duration = .seconds(25)
    /// The poller lease: how long it lasts without renewal (a dead poller is replaced
    /// after at most this long). Renewed every third of it.
    public var leaseDuration: Duration = .seconds(15)
    /// The shortest time between two edits of one status message (Telegram allows about one
    /// message per second per chat).
    public var editInterval: Duration = .milliseconds(1500)
    /// The shortest time between two status edits in one private chat, whichever messages
    /// they edit (three times this in a group).
    public var chatEditInterval: Duration = .seconds(1)
    /// This process's name in the lease and in logs.
    public var frontID: String
    /// Whether the worker enhances prompts of jobs from Telegram.
    public var enhance = true

    /// Creates a configuration.
    public init(token: String, frontID: String) {
        self.token = token
        self.frontID = frontID
    }

    /// The bot's numeric id: the part of the token before the colon (public; it is the
    /// bot's user id), nil when the token does not have a bot token's shape.
    public var botID: String? {
        guard let colon = token.firstIndex(of: ":") else { return nil }
        let id = token[..<colon]
        let secret = token[token.index(after: colon)...]
        guard !id.isEmpty, id.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), secret.count >= 8,
              secret.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D })
        else { return nil }
        return String(id)
    }
}
