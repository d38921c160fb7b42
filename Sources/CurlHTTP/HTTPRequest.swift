/// One HTTP request for `HTTPClient.send`: method, URL, headers, optional body and limits.
///
/// Headers may carry secrets (`Authorization`, `x-goog-api-key`); so may the URL's query
/// string. Neither ever appears in an `HTTPError`, and `description` shows only the method,
/// `scheme://host[:port]/path`, the header names and the body's size.
public struct HTTPRequest: Sendable {
    /// The method, such as "GET" or "POST"; "HEAD" asks for no body.
    public var method: String
    /// An absolute `http://` or `https://` URL; query values encoded with `URLEncoding.queryValue`.
    public var url: String
    /// Header fields sent in this order; a name must not contain ':' or a line break, a value
    /// no line break.
    public var headers: [(name: String, value: String)]
    /// The body sent as-is (with its length); nil sends none.
    public var body: [UInt8]?
    /// The longest wait for the connection (TCP and TLS) to open; default 10 s.
    public var connectTimeout: Duration
    /// The longest the whole exchange may take, connecting included; default 120 s.
    public var timeout: Duration
    /// The largest response body accepted, in bytes; default 20 MiB. A longer body fails
    /// with `.bodyTooLarge` as soon as its Content-Length, or its bytes received, exceed it.
    public var maxResponseBytes: Int

    /// Makes a request with the default limits (connect 10 s, total 120 s, body 20 MiB).
    public init(method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.connectTimeout = .seconds(10)
        self.timeout = .seconds(120)
        self.maxResponseBytes = 20 * 1024 * 1024
    }
}

extension HTTPRequest: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The method, the URL without query or credentials, header names and body size: no secrets.
    public var description: String {
        let names = headers.map(\.name).joined(separator: ", ")
        let bodyText = body.map { ", \($0.count)-byte body" } ?? ""
        return "\(method) \(RedactedURL(url).text) [\(names)]\(bodyText)"
    }

    /// Same as `description`, so that `debugPrint` and string interpolation of optionals
    /// show no secrets either.
    public var debugDescription: String { "HTTPRequest(\(description))" }

    /// What `dump` and debuggers show: the same redacted parts, never header values or the body.
    public var customMirror: Mirror {
        Mirror(self, children: [
            "method": method,
            "url": RedactedURL(url).text,
            "headerNames": headers.map(\.name),
            "bodyBytes": body?.count as Any,
            "connectTimeout": connectTimeout,
            "timeout": timeout,
            "maxResponseBytes": maxResponseBytes,
        ], displayStyle: .struct)
    }
}
