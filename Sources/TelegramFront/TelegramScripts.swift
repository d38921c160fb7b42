import ImageQueue
import RedisClient

/// The Telegram front's Lua scripts (`lua/telegram/`): the poller lease and the delivery
/// bookkeeping, embedded into the binary at build time.
public enum TelegramScripts {
    static func named(_ name: String) -> RedisScript {
        RedisScript(embedded: name, from: EmbeddedLua.sources, in: "lua/telegram")
    }

    static let renewLease = named("renewLease")
    static let releaseLease = named("releaseLease")
    static let commitUpdate = named("commitUpdate")
    static let updateDelivery = named("updateDelivery")

    /// Every script's exact text, keyed by name (what `imagequeue scripts` lists beside the queue's).
    public static var sources: [String: String] { EmbeddedLua.sources }
}
