/// One reply from Redis (RESP2), copied out of hiredis' reply object.
public enum RESPValue: Sendable, Equatable, CustomStringConvertible {
    /// A status reply such as `OK`.
    case status(String)
    /// An error reply, as text (`ERR ...`, `NOSCRIPT ...`).
    case error(String)
    /// An integer reply.
    case integer(Int64)
    /// A bulk string, binary safe.
    case bulk([UInt8])
    /// The null bulk string or null array.
    case null
    /// An array of replies.
    case array([RESPValue])

    /// The reply as text: status, bulk string (as UTF-8) or integer.
    public var string: String? {
        switch self {
        case .status(let text): text
        case .bulk(let bytes): String(decoding: bytes, as: UTF8.self)
        case .integer(let value): String(value)
        default: nil
        }
    }

    /// The reply as an integer: integer, or a bulk/status string that parses as one.
    public var int: Int64? {
        switch self {
        case .integer(let value): value
        case .bulk, .status: string.flatMap { Int64($0) }
        default: nil
        }
    }

    /// The bytes of a bulk string.
    public var bytes: [UInt8]? {
        if case .bulk(let bytes) = self { return bytes }
        return nil
    }

    /// The elements of an array reply.
    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// Whether this is the null reply.
    public var isNull: Bool { self == .null }

    /// Throws a `.server` error when this is an error reply; returns self otherwise.
    public func orThrow() throws(RedisError) -> RESPValue {
        if case .error(let text) = self { throw RedisError(.server, text) }
        return self
    }

    public var description: String {
        switch self {
        case .status(let text): "+\(text)"
        case .error(let text): "-\(text)"
        case .integer(let value): ":\(value)"
        case .bulk(let bytes): "\"\(String(decoding: bytes, as: UTF8.self))\""
        case .null: "(nil)"
        case .array(let values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        }
    }
}

/// Anything that can be one argument of a Redis command.
public protocol RedisArgument {
    /// The argument's bytes as sent to Redis.
    var redisBytes: [UInt8] { get }
}

extension String: RedisArgument {
    public var redisBytes: [UInt8] { Array(utf8) }
}
extension Substring: RedisArgument {
    public var redisBytes: [UInt8] { Array(utf8) }
}
extension Int: RedisArgument {
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}
extension Int64: RedisArgument {
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}
extension Array: RedisArgument where Element == UInt8 {
    public var redisBytes: [UInt8] { self }
}
