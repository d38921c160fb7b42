import HTTPTypes
import Hummingbird

/// The dashboard's three files, `Sources/ImageQueueServer/Dashboard/{index.html,app.css,app.js}`,
/// embedded into the binary at build time by `Sources/EmbedPlugin` (as `EmbeddedDashboard`)
/// and served as they are: the page at `GET /`, its style sheet and script under `/dashboard/`.
/// Nothing else is loaded, so the Content-Security-Policy allows this origin only.
struct DashboardAsset: Sendable {
    /// The route, e.g. `/dashboard/app.js`.
    let path: String
    /// The file name in `Dashboard/`.
    let file: String
    let contentType: String
    let body: String
    /// A strong validator of the body (FNV-1a, 64 bits): a browser revalidates with
    /// `If-None-Match` and gets 304 while the binary is the same.
    let etag: String

    init(path: String, file: String, contentType: String) {
        guard let body = EmbeddedDashboard.sources[file] else {
            fatalError("Dashboard/\(file) is not embedded: touch Package.swift after adding a file")
        }
        self.path = path
        self.file = file
        self.contentType = contentType
        self.body = body
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in body.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        etag = "\"\(String(hash, radix: 16))\""
    }

    /// The page, also served at `/jobs/{id}` (it shows that job).
    static let page = all[0]

    static let all: [DashboardAsset] = [
        DashboardAsset(path: "/", file: "index.html", contentType: "text/html; charset=utf-8"),
        DashboardAsset(path: "/dashboard/app.css", file: "app.css", contentType: "text/css; charset=utf-8"),
        DashboardAsset(path: "/dashboard/app.js", file: "app.js", contentType: "text/javascript; charset=utf-8"),
    ]

    /// This origin only (thumbnails are fetched with the token and shown as blob: URLs; the icon is a
    /// data: URL); no inline script or style.
    static let contentSecurityPolicy = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        + "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    func response(to request: Request) -> Response {
        var headers: HTTPFields = [.contentType: contentType, .eTag: etag, .cacheControl: "no-cache",
                                   .xContentTypeOptions: "nosniff"]
        if file.hasSuffix(".html") { headers[.contentSecurityPolicy] = Self.contentSecurityPolicy }
        if let given = request.headers[.ifNoneMatch],
           given.split(separator: ",").map({ $0.filter { $0 != " " } }).contains(where: { $0 == etag || $0 == "*" }) {
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

extension HTTPField.Name {
    static let xContentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
}
