/// The keys one Telegram bot's fronts share (see docs/PROTOCOL.md), owned by this module like
/// the scripts that change them (`TelegramScripts`): `<prefix>:telegram:{<bot>}:…`, under the
/// queue's key prefix and the bot's own hash tag, so the front's scripts touch one Cluster slot.
public struct TelegramKeys: Sendable, Equatable {
    let base: String

    /// The keys for one bot (its numeric id, the public part of its token) under a key prefix.
    public init(prefix: String, bot: String) {
        base = "\(prefix):telegram:{\(bot)}:"
    }

    /// STRING: the poller lease, holding the current poller's owner token.
    public var lease: String { base + "lease" }
    /// LIST: a token pushed when a poller hands the lease over, for a standby to BLPOP.
    public var handover: String { base + "handover" }
    /// STRING: the next update_id to ask the Bot API for.
    public var offset: String { base + "offset" }
    /// HASH: job id -> delivery record JSON, for every job whose result is still to be sent.
    public var deliveries: String { base + "deliveries" }
}
