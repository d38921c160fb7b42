/// Where and how to reach Redis, parsed from a URL:
/// `redis://[[user]:password@]host[:port][/db]`, `rediss://…` (the same over TLS) or
/// `unix:///path/to/socket[?db=N&user=U&password=P]`.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// The transport.
    public enum Address: Sendable, Equatable {
        /// TCP host and port.
        case tcp(host: String, port: Int)
        /// A unix domain socket path.
        case unix(path: String)
    }

    /// The transport.
    public var address: Address
    /// ACL user name, when the URL has one.
    public var user: String?
    /// Password; never printed.
    public var password: String?
    /// Database number, 0 by default.
    public var database: Int
    /// TLS settings for a `rediss://` endpoint; nil speaks plain RESP.
    public var tls: RedisTLS?

    /// Creates an endpoint.
    public init(address: Address, user: String? = nil, password: String? = nil, database: Int = 0, tls: RedisTLS? = nil) {
        self.address = address
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// Parses a Redis URL.
    /// - Throws: `RedisError` of kind `.invalidURL` naming what is wrong (never the password).
    public init(url: String) throws(RedisError) {
        func invalid(_ why: String) -> RedisError {
            RedisError(.invalidURL, "\(why) (expected redis://[user:password@]host[:port][/db], rediss://… for TLS, or unix:///path)")
        }
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw invalid("no scheme") }
        let scheme = parts[0].lowercased()
        var rest = String(parts[1])
        var query: [String: String] = [:]
        if let q = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: q)...].split(separator: "&") {
                // Keeps empty sides, so `?=` or `?=x` is an empty name, not a crash.
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query[String(kv[0])] = kv.count > 1 ? Self.percentDecode(kv[1]) : ""
            }
            rest = String(rest[..<q])
        }
        switch scheme {
        case "unix", "redis+unix":
            guard rest.hasPrefix("/"), rest.count > 1 else { throw invalid("unix socket URL needs an absolute path") }
            self.init(address: .unix(path: Self.percentDecode(Substring(rest))))
            user = query["user"]
            password = query["password"]
            if let db = query["db"] {
                guard let number = Int(db), number >= 0 else { throw invalid("database must be a number") }
                database = number
            }
        case "redis", "rediss":
            var authority = rest
            var path = ""
            if let slash = rest.firstIndex(of: "/") {
                authority = String(rest[..<slash])
                path = String(rest[rest.index(after: slash)...])
            }
            var user: String?
            var password: String?
            if let at = authority.lastIndex(of: "@") {
                let credentials = authority[..<at]
                authority = String(authority[authority.index(after: at)...])
                if let colon = credentials.firstIndex(of: ":") {
                    let name = credentials[..<colon]
                    user = name.isEmpty ? nil : Self.percentDecode(name)
                    password = Self.percentDecode(credentials[credentials.index(after: colon)...])
                } else if !credentials.isEmpty {
                    // redis://secret@host: a lone value is the password (as redis-cli reads it).
                    password = Self.percentDecode(credentials)
                }
            }
            var host = authority
            var port = 6379
            if authority.hasPrefix("[") {
                guard let close = authority.firstIndex(of: "]") else { throw invalid("unclosed IPv6 address") }
                host = String(authority[authority.index(after: authority.startIndex)..<close])
                let after = authority[authority.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw invalid("bad port") }
                    port = p
                }
            } else if let colon = authority.lastIndex(of: ":") {
                host = String(authority[..<colon])
                guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else {
                    throw invalid("bad port")
                }
                port = p
            }
            guard !host.isEmpty else { throw invalid("no host") }
            var database = 0
            if !path.isEmpty {
                guard let number = Int(path), number >= 0 else { throw invalid("database must be a number") }
                database = number
            } else if let db = query["db"] {
                guard let number = Int(db), number >= 0 else { throw invalid("database must be a number") }
                database = number
            }
            self.init(address: .tcp(host: host, port: port), user: user, password: password ?? query["password"],
                      database: database, tls: scheme == "rediss" ? RedisTLS() : nil)
        case "redis+cluster", "rediss+cluster":
            throw RedisError(.invalidURL, "a redis+cluster:// URL names several nodes: read it with RedisConfiguration(url:)")
        default:
            throw invalid("unknown scheme \(scheme)")
        }
    }

    /// The URL with the password masked: safe for logs.
    public var description: String {
        let credentials: String
        switch (user, password) {
        case (nil, nil): credentials = ""
        case (let u?, nil): credentials = "\(u)@"
        case (let u, _?): credentials = "\(u ?? ""):***@"
        }
        switch address {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return "\(tls == nil ? "redis" : "rediss")://\(credentials)\(shownHost):\(port)" + (database == 0 ? "" : "/\(database)")
        case .unix(let path):
            return "unix://\(path)" + (database == 0 ? "" : "?db=\(database)") + (password == nil ? "" : " (with password)")
        }
    }

    /// Decodes %XX escapes; a `%` not followed by two hex digits is kept as written.
    private static func percentDecode(_ text: Substring) -> String {
        let input = Array(text.utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            // Two hex digits exactly: `UInt8(_:radix:)` would also take a sign ("%-0", "%+f").
            if input[index] == UInt8(ascii: "%"), index + 2 < input.count,
               let high = hexDigit(input[index + 1]), let low = hexDigit(input[index + 2]) {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(input[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
