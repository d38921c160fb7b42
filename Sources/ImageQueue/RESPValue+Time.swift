import RedisClient

extension RESPValue {
    /// A `TIME` reply as ms since the epoch, nil for anything else.
    public var redisTimeMilliseconds: Int64? {
        guard let parts = array, parts.count == 2, let seconds = parts[0].int, let microseconds = parts[1].int else { return nil }
        return seconds * 1000 + microseconds / 1000
    }
}
