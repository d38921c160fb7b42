import Synchronization

/// A Lua script run with EVALSHA. Its SHA-1 comes from `SCRIPT LOAD` on first use; a
/// connection that meets `NOSCRIPT` (Redis restarted, `SCRIPT FLUSH`) loads it again and
/// repeats the call, so callers never see that error.
public final class RedisScript: Sendable {
    /// A name for messages.
    public let name: String
    /// The exact Lua text.
    public let source: String
    private let loadedSHA = Mutex<String?>(nil)

    /// Creates a script from its text.
    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }

    /// The SHA-1 Redis reported when the script was loaded, nil before.
    public var sha: String? { loadedSHA.withLock { $0 } }

    func remember(sha: String) { loadedSHA.withLock { $0 = sha } }
}

/// One command: plain arguments, or a script call by SHA.
public struct RedisCommand: Sendable {
    enum Body: Sendable {
        case arguments([[UInt8]])
        case script(RedisScript, keys: [[UInt8]], arguments: [[UInt8]])
    }

    let body: Body
    /// Whether the connection confirms the command's writes with `WAIT` (when the
    /// configuration asks for replicas): see `awaitingReplicas()`.
    public private(set) var awaitsReplicas = false

    /// The same command, whose writes must reach `RedisConfiguration.waitReplicas` replicas
    /// before it counts as done: the connection sends `WAIT` right after it, and fewer
    /// acknowledgements turn its reply into an `UNREPLICATED` error (it ran on the master, but
    /// a failover now could lose it). No effect while `waitReplicas` is 0.
    public func awaitingReplicas() -> RedisCommand {
        var copy = self
        copy.awaitsReplicas = true
        return copy
    }

    /// A command from its words, e.g. `RedisCommand("HGET", key, "status")`.
    public init(_ words: any RedisArgument...) {
        body = .arguments(words.map(\.redisBytes))
    }

    /// A command from a prepared argument list.
    public init(arguments: [[UInt8]]) {
        body = .arguments(arguments)
    }

    /// A call of `script` with its KEYS and ARGV.
    public static func script(_ script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument]) -> RedisCommand {
        RedisCommand(body: .script(script, keys: keys.map(\.redisBytes), arguments: arguments.map(\.redisBytes)))
    }

    private init(body: Body) { self.body = body }

    var script: RedisScript? {
        if case .script(let script, _, _) = body { return script }
        return nil
    }

    /// The words sent for this command, given the script's SHA.
    func words() -> [[UInt8]] {
        switch body {
        case .arguments(let words):
            return words
        case .script(let script, let keys, let arguments):
            var words: [[UInt8]] = ["EVALSHA".redisBytes, (script.sha ?? "").redisBytes, String(keys.count).redisBytes]
            words.append(contentsOf: keys)
            words.append(contentsOf: arguments)
            return words
        }
    }
}
