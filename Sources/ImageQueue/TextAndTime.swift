import RedisClient

extension Duration {
    /// Whole milliseconds (at least 1 for a positive duration, so a short timeout never
    /// becomes "no timeout").
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return ms == 0 && self > .zero ? 1 : ms
    }
}

extension RESPValue {
    /// A `TIME` reply as ms since the epoch, nil for anything else.
    public var redisTimeMilliseconds: Int64? {
        guard let parts = array, parts.count == 2, let seconds = parts[0].int, let microseconds = parts[1].int else { return nil }
        return seconds * 1000 + microseconds / 1000
    }
}

extension StringProtocol {
    /// The text without white space at either end.
    public func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let end = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(String.UnicodeScalarView(scalars[start...end]))
    }
}
