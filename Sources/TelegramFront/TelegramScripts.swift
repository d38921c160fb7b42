import RedisClient

/// The Telegram front's Lua scripts (`lua/telegram/`): the poller lease and the delivery
/// bookkeeping, embedded into the binary at build time.
public enum TelegramScripts {
    static func named(_ name: String) -> RedisScript {
        guard let source = EmbeddedLua.sources[name] else {
            fatalError("lua/telegram/\(name).lua is not embedded: touch Package.swift after adding a script")
        }
        return RedisScript(name: name, source: source)
    }

    static let renewLease = named("renewLease")
    static let releaseLease = named("releaseLease")
    static let commitUpdate = named("commitUpdate")
    static let updateDelivery = named("updateDelivery")

    /// Every script's exact text, keyed by name (what `imagequeue scripts` lists beside the queue's).
    public static var sources: [String: String] { EmbeddedLua.sources }
}
