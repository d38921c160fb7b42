/// Why `HTTPClient.send` got no response.
///
/// `message` names the method and `scheme://host[:port]/path` only: never a header value,
/// the request body, or the URL's query string or user information.
public struct HTTPError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure, for deciding whether to retry.
    public enum Kind: String, Sendable {
        /// The URL could not be parsed, or its scheme is not http or https.
        case invalidURL
        /// No connection could be opened (name not resolved, connection refused or
        /// unreachable): the request was certainly not delivered.
        case connectionFailed
        /// The connect timeout or the total timeout passed.
        case timeout
        /// The response body (or its announced Content-Length) exceeds `maxResponseBytes`.
        case bodyTooLarge
        /// The TLS handshake or the certificate verification failed.
        case tls
        /// The calling task was cancelled; the transfer was aborted.
        case cancelled
        /// Anything else: the connection broke mid-exchange, the reply was not HTTP, a
        /// header was malformed, libcurl failed. The request may have been delivered.
        case protocolError
    }

    /// The kind of failure.
    public let kind: Kind
    /// What failed, free of secrets.
    public let message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// "`kind`: `message`".
    public var description: String { "\(kind.rawValue): \(message)" }
}
