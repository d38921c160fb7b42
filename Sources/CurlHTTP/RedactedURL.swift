import CCurl

/// A URL as it may appear in errors and logs: `scheme://host[:port]/path`, without user
/// information, query string or fragment, plus the secret parts it left out so they can be
/// scrubbed from libcurl's own error text.
///
/// A path segment shaped like a Telegram bot token (`bot<digits>:<token>`) is shown as
/// `bot<redacted>`: the Bot API puts its secret in the path.
struct RedactedURL {
    /// The shareable form, or `<unparseable URL>`.
    let text: String
    /// The parts left out (query, fragment, user, password, token segments).
    let secrets: [String]

    /// Parses `url` with libcurl's parser.
    init(_ url: String) {
        if let parsed = CurlURL(url) {
            self.init(parsed)
        } else {
            self.init(text: "<unparseable URL>", secrets: [url])
        }
    }

    private init(text: String, secrets: [String]) {
        self.text = text
        self.secrets = secrets
    }

    /// Redacts an already parsed URL.
    init(_ url: CurlURL) {
        var secrets: [String] = []
        for part in [CURLUPART_QUERY, CURLUPART_FRAGMENT, CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_OPTIONS] {
            if let value = url.part(part), !value.isEmpty { secrets.append(value) }
        }
        let scheme = url.part(CURLUPART_SCHEME) ?? "?"
        let host = url.part(CURLUPART_HOST) ?? "?"
        let port = url.part(CURLUPART_PORT).map { ":\($0)" } ?? ""
        let segments = (url.part(CURLUPART_PATH) ?? "/").split(separator: "/", omittingEmptySubsequences: false).map { segment in
            if Self.looksLikeBotToken(segment) {
                secrets.append(String(segment))
                return "bot<redacted>"
            }
            return String(segment)
        }
        self.init(text: "\(scheme)://\(host)\(port)\(segments.joined(separator: "/"))", secrets: secrets)
    }

    private static func looksLikeBotToken(_ segment: Substring) -> Bool {
        guard segment.hasPrefix("bot"), let colon = segment.firstIndex(of: ":") else { return false }
        let digits = segment[segment.index(segment.startIndex, offsetBy: 3)..<colon]
        return !digits.isEmpty && digits.allSatisfy(\.isASCII) && digits.allSatisfy(\.isNumber)
    }
}

/// Replaces every occurrence of each secret (of 4 characters or more; shorter ones could
/// not identify anything and would mangle the text) with `<redacted>`.
func scrub(_ text: String, removing secrets: [String]) -> String {
    var result = text
    for secret in secrets.filter({ $0.count >= 4 }).sorted(by: { $0.count > $1.count }) {
        result = result.replacing(secret, with: "<redacted>")
    }
    return result
}

/// `url` as it may be printed or logged: no user information, query string or fragment.
public func shareableURL(_ url: String) -> String { RedactedURL(url).text }
