import Hummingbird

/// The API's bearer-token check, attached once to the route group of every `/v1` route and
/// `/metrics`. A mutating request (any method but GET and HEAD) needs
/// `Authorization: Bearer <token>`; a read needs it only with `protectReads`. The comparison
/// takes the same time wherever the first difference is, and the token is never logged.
struct BearerTokenMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    private let expected: [UInt8]
    let protectReads: Bool

    init(token: String, protectReads: Bool) {
        expected = Array(token.utf8)
        self.protectReads = protectReads
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let mutating = request.method != .get && request.method != .head
        if mutating || protectReads {
            guard let header = request.headers[.authorization], accepts(header) else { throw APIError.unauthorized }
        }
        return try await next(request, context)
    }

    /// Whether `header` is `Bearer <token>`, in time that depends only on the token's length.
    func accepts(_ header: String) -> Bool {
        guard header.hasPrefix("Bearer ") else { return false }
        let given = Array(header.utf8.dropFirst("Bearer ".utf8.count))
        var difference = UInt8(given.count == expected.count ? 0 : 1)
        for index in 0..<expected.count {
            difference |= expected[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }
}
