extension Duration {
    /// Whole milliseconds, rounded towards zero, but at least 1 for a positive duration (so a
    /// short timeout never becomes "no timeout"); `Int64.max` or `.min` past those bounds.
    /// The one conversion for Redis arguments, poll(2) and libcurl timeouts.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        let (ms, overflowAgain) = whole.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        if overflow || overflowAgain { return seconds > 0 ? .max : .min }
        return ms == 0 && self > .zero ? 1 : ms
    }
}
