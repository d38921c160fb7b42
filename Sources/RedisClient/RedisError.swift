/// An error from the Redis client. Its text never contains a password: neither the
/// endpoint's description nor hiredis' messages carry one.
public struct RedisError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure this is.
    public enum Kind: String, Sendable {
        /// The address is not a valid Redis URL.
        case invalidURL
        /// No connection could be made (refused, unreachable, name not found, timed out).
        case connectionFailed
        /// The connection broke while a command was in flight: it may or may not have run.
        case connectionLost
        /// No reply within the command's timeout; the connection was dropped.
        case timeout
        /// Redis refused the credentials or the database.
        case authentication
        /// The server is not what the URL says: a Redis Cluster node behind a single-node
        /// URL, or a standalone server behind a `redis+cluster://` URL.
        case misconfigured
        /// TLS could not be set up: an untrusted CA, a certificate for another host or
        /// expired, a client certificate required or refused, TLS spoken to a port that does
        /// not speak it, an unreadable certificate or key file. Retrying cannot help. (Plaintext
        /// spoken to a TLS port ends like a server closing at once, so it is a
        /// `.connectionFailed` whose message points at `rediss://`.)
        case tls
        /// Redis answered with an error reply (see `serverCode`).
        case server
        /// The reply could not be understood.
        case protocolError
        /// The caller's task was cancelled.
        case cancelled
        /// The client was closed.
        case closed
    }

    /// What kind of failure this is.
    public let kind: Kind
    /// A one-line explanation, safe to log.
    public let message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// For `.server` errors, the first word of the reply (`NOSCRIPT`, `WRONGTYPE`, or a
    /// script's own code such as `STALE_TOKEN`).
    public var serverCode: String? {
        guard kind == .server else { return nil }
        return message.split(separator: " ", maxSplits: 1).first.map(String.init)
    }

    /// For `.server` errors, the text after the code word.
    public var serverDetail: String {
        let parts = message.split(separator: " ", maxSplits: 1)
        return parts.count > 1 ? String(parts[1]) : ""
    }

    /// Whether Redis refused the command because it is at `maxmemory` with the `noeviction`
    /// policy (an `OOM` error reply, also when a script's write was refused). Nothing was
    /// written; the same call succeeds once memory is freed.
    public var isOutOfMemory: Bool { serverCode == "OOM" }

    /// Whether the operation may succeed if tried again once Redis is reachable.
    public var isTransient: Bool {
        switch kind {
        case .connectionFailed, .connectionLost, .timeout: true
        case .server: serverCode == "LOADING" || serverCode == "BUSY" || serverCode == "TRYAGAIN"
            || serverCode == "MASTERDOWN" || serverCode == "READONLY"
        default: false
        }
    }

    /// Whether the settings are wrong (the URL, the credentials, TLS, the kind of server):
    /// retrying cannot help, and a process stops with exit code 2.
    public var isSetupError: Bool { [.invalidURL, .authentication, .misconfigured, .tls].contains(kind) }

    public var description: String { "redis \(kind.rawValue): \(message)" }
}
