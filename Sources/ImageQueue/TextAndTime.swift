extension Duration {
    /// Whole milliseconds (at least 1 for a positive duration, so a short timeout never
    /// becomes "no timeout").
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return ms == 0 && self > .zero ? 1 : ms
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
