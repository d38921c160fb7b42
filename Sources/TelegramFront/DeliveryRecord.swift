/// A job whose outcome is still to be sent to a chat: kept in Redis from the moment the
/// command is accepted until the image (or the failure) has been delivered, so whichever
/// front polls next can finish it.
public struct DeliveryRecord: Codable, Sendable, Equatable {
    /// The job.
    public var job: String
    /// The chat to answer in.
    public var chat: Int64
    /// The user's command message, which the answers reply to.
    public var replyTo: Int64
    /// The Telegram user who asked.
    public var user: Int64
    /// The bot's status message being edited, once sent.
    public var statusMessage: Int64?
    /// The update the command came in.
    public var update: Int64

    enum CodingKeys: String, CodingKey {
        case job, chat, replyTo = "reply_to", user, statusMessage = "status_message", update
    }

    /// Creates a record.
    public init(job: String, chat: Int64, replyTo: Int64, user: Int64, statusMessage: Int64? = nil, update: Int64) {
        self.job = job
        self.chat = chat
        self.replyTo = replyTo
        self.user = user
        self.statusMessage = statusMessage
        self.update = update
    }
}
