/// A complete HTTP response, whatever its status: `HTTPClient.send` returns non-2xx
/// statuses rather than throwing them.
public struct HTTPResponse: Sendable {
    /// The final status code, such as 200 or 429 (interim 1xx responses are skipped).
    public var status: Int
    /// The final response's header fields, names lowercased; of repeated fields the last
    /// value wins.
    public var headers: [String: String]
    /// The body, byte for byte as received (no content decoding is asked for).
    public var body: [UInt8]

    /// Makes a response, lowercasing the header names (for fakes in callers' tests).
    public init(status: Int, headers: [String: String] = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { _, last in last })
        self.body = body
    }

    /// The value of header field `name`, matched case-insensitively; nil when absent.
    public func header(_ name: String) -> String? {
        headers[name.lowercased()]
    }
}
