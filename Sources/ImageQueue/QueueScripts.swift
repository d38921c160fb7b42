import RedisClient

/// The Lua scripts of `lua/`, embedded into the binary at build time.
package enum QueueScripts {
    static func named(_ name: String) -> RedisScript { RedisScript(embedded: name, from: EmbeddedLua.sources, in: "lua") }

    static let enqueueJob = named("enqueueJob")
    static let claimJob = named("claimJob")
    static let extendLease = named("extendLease")
    static let reportProgress = named("reportProgress")
    static let completeJob = named("completeJob")
    static let completeAndClaim = named("completeAndClaim")
    static let failJob = named("failJob")
    static let releaseJob = named("releaseJob")
    static let recoverExpired = named("recoverExpired")
    static let cancelJob = named("cancelJob")
    static let retryDead = named("retryDead")
    static let purgeDead = named("purgeDead")
    static let setConcurrency = named("setConcurrency")
    static let setPaused = named("setPaused")
    static let checkRateLimit = named("checkRateLimit")
    static let claimWebhook = named("claimWebhook")
    static let settleWebhook = named("settleWebhook")

    /// Every embedded script's exact text, by name (what `imagequeue scripts` prints).
    package static var sources: [String: String] { EmbeddedLua.sources }
}

/// The protocol's Lua scripts as sent to Redis, by name: for tools and other languages.
public enum ImageQueueScripts {
    /// Every embedded script's exact text (includes resolved), keyed by name.
    public static var sources: [String: String] { EmbeddedLua.sources }
}

extension RedisScript {
    /// The script `<directory>/<name>.lua` out of a target's embedded sources (`EmbedPlugin`).
    /// A missing one is a build mistake, not a runtime condition: it stops the process at once.
    package convenience init(embedded name: String, from sources: [String: String], in directory: String) {
        guard let source = sources[name] else {
            fatalError("\(directory)/\(name).lua is not embedded: touch Package.swift after adding a script")
        }
        self.init(name: name, source: source)
    }
}
