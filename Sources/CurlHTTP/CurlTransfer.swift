import CCurl
import DedicatedThreads
import Synchronization

/// One request's transfer: its easy handle (which keeps the parsed URL and header list it
/// points into), the libcurl callbacks and the response they collect.
///
/// `@unchecked Sendable` because it is handed from the calling task to the dedicated
/// thread that runs `perform`, and that is safe: the task configures it in `init` and then
/// never touches it again except through `cancel`, which only stores to an `Atomic`; the
/// callbacks' state is written only on the performing thread, during `perform`, and leaves
/// it inside the returned `Result` (thread creation and continuation resumption order the
/// accesses).
final class CurlTransfer: @unchecked Sendable {
    /// The most header bytes accepted across all of a response's header blocks.
    static let maxHeaderBytes = 256 * 1024

    private let easy: CurlEasyHandle
    private let redactedURL: RedactedURL
    private let method: String
    private let maxResponseBytes: Int
    private let expectsBody: Bool
    /// Header values and URL parts to scrub from libcurl's error text.
    private let secrets: [String]
    private let cancelRequested = Atomic<Bool>(false)

    // Written by the callbacks, on the performing thread only.
    private var responseHeaders: [String: String] = [:]
    private var headerBytes = 0
    private var body = ResponseBodyBuffer()
    /// Why a callback stopped the transfer, when it did.
    private var abortReason: HTTPError?

    /// Validates `request` and configures a handle for it.
    ///
    /// Throws `.invalidURL` for a URL that is not absolute http(s), `.protocolError` for a
    /// method or header that cannot be sent as given.
    init(_ request: HTTPRequest) throws(HTTPError) {
        method = request.method
        guard Self.isToken(request.method) else {
            throw HTTPError(.protocolError, "the method is not a valid HTTP token")
        }
        guard let url = CurlURL(request.url) else {
            throw HTTPError(.invalidURL, "\(Self.shown(request.method)) \(RedactedURL(request.url).text): the URL cannot be parsed")
        }
        redactedURL = RedactedURL(url)
        let scheme = url.part(CURLUPART_SCHEME)?.lowercased() ?? ""
        guard scheme == "http" || scheme == "https" else {
            throw HTTPError(.invalidURL, "\(method) \(redactedURL.text): only http and https URLs are supported")
        }
        maxResponseBytes = max(0, request.maxResponseBytes)
        expectsBody = request.method != "HEAD"
        guard expectsBody || request.body == nil else {
            throw HTTPError(.protocolError, "\(method) \(redactedURL.text): a HEAD request cannot carry a body")
        }
        secrets = redactedURL.secrets + request.headers.map(\.value)
        easy = try CurlEasyHandle()
        try configure(request, url: url)
    }

    /// Asks the transfer to stop; its callbacks abort it at their next call (within about
    /// a second while the connection is idle, at once while data flows).
    func cancel() {
        cancelRequested.store(true, ordering: .relaxed)
    }

    /// Runs the transfer on the calling thread, which it blocks until the response is
    /// complete or the transfer fails: call it on a dedicated thread.
    func perform() -> Result<HTTPResponse, HTTPError> {
        if cancelRequested.load(ordering: .relaxed) { return .failure(failure(.cancelled, "cancelled")) }
        let context = Unmanaged.passUnretained(self).toOpaque()
        do {
            try easy.set(CURLOPT_WRITEDATA, pointer: context)
            try easy.set(CURLOPT_HEADERDATA, pointer: context)
            try easy.set(CURLOPT_XFERINFODATA, pointer: context)
        } catch {
            return .failure(error)
        }
        let code = easy.perform()
        if code == CURLE_OK {
            return .success(HTTPResponse(status: easy.responseCode(), headers: responseHeaders, body: body.take()))
        }
        body = ResponseBodyBuffer()
        return .failure(error(for: code))
    }

    // MARK: - Configuration

    private func configure(_ request: HTTPRequest, url: CurlURL) throws(HTTPError) {
        try easy.set(url: url)
        try easy.set(CURLOPT_PROTOCOLS_STR, string: "http,https")
        try easy.set(CURLOPT_NOSIGNAL, 1)
        // TLS verification always on.
        try easy.set(CURLOPT_SSL_VERIFYPEER, 1)
        try easy.set(CURLOPT_SSL_VERIFYHOST, 2)
        // Redirects are returned, never followed: a 3xx is the caller's to judge, and
        // following one could carry the Authorization header somewhere else.
        try easy.set(CURLOPT_FOLLOWLOCATION, 0)
        try easy.set(CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(request.connectTimeout))
        try easy.set(CURLOPT_TIMEOUT_MS, Self.milliseconds(request.timeout))
        // Long silent waits (an LLM thinking) must not lose the connection to idle NATs.
        try easy.set(CURLOPT_TCP_KEEPALIVE, 1)
        try easy.set(CURLOPT_TCP_KEEPIDLE, 30)
        try easy.set(CURLOPT_TCP_KEEPINTVL, 15)

        try check(iq_curl_setopt_write_callback(easy.pointer) { data, size, count, context in
            CurlTransfer.receiveBody(data, size, count, context)
        })
        try check(iq_curl_setopt_header_callback(easy.pointer) { data, size, count, context in
            CurlTransfer.receiveHeader(data, size, count, context)
        })
        try check(iq_curl_setopt_xferinfo_callback(easy.pointer) { context, _, _, _, _ in
            CurlTransfer.reportProgress(context)
        })
        try easy.set(CURLOPT_NOPROGRESS, 0)

        try configureMethodAndBody(request)
        try configureHeaders(request)
    }

    private func configureMethodAndBody(_ request: HTTPRequest) throws(HTTPError) {
        switch (request.method, request.body) {
        case ("GET", nil):
            try easy.set(CURLOPT_HTTPGET, 1)
        case ("HEAD", nil):
            try easy.set(CURLOPT_NOBODY, 1)
        case (let method, nil) where method != "POST":
            try easy.set(CURLOPT_CUSTOMREQUEST, string: method)
        case (let method, let body):
            // POSTFIELDSIZE first, so COPYPOSTFIELDS copies that many bytes (zeros included).
            let bytes = body ?? []
            try easy.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(bytes.count))
            var copyError: HTTPError?
            bytes.withUnsafeBytes { buffer in
                var empty: UInt8 = 0
                let start = buffer.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) }
                do throws(HTTPError) {
                    if let start {
                        try easy.set(CURLOPT_COPYPOSTFIELDS, pointer: start)
                    } else {
                        try easy.set(CURLOPT_COPYPOSTFIELDS, pointer: &empty)
                    }
                } catch {
                    copyError = error
                }
            }
            if let copyError { throw copyError }
            if method != "POST" { try easy.set(CURLOPT_CUSTOMREQUEST, string: method) }
        }
    }

    private func configureHeaders(_ request: HTTPRequest) throws(HTTPError) {
        let headerList = CurlHeaderList()
        var names = Set<String>()
        for (name, value) in request.headers {
            guard Self.isToken(name) else {
                throw HTTPError(.protocolError, "\(method) \(redactedURL.text): a header name is not a valid HTTP token")
            }
            guard !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                throw HTTPError(.protocolError, "\(method) \(redactedURL.text): the value of header \(name) contains a line break")
            }
            names.insert(name.lowercased())
            // "Name:" would remove the header; "Name;" is libcurl's way to send it empty.
            try headerList.append(value.isEmpty ? "\(name);" : "\(name): \(value)")
        }
        // No "Expect: 100-continue" round trip before a body.
        if !names.contains("expect") { try headerList.append("Expect:") }
        // libcurl would label a body "application/x-www-form-urlencoded"; send no type rather
        // than a wrong one.
        if request.body != nil, !names.contains("content-type") { try headerList.append("Content-Type:") }
        try easy.set(CURLOPT_HTTPHEADER, list: headerList)
    }

    private func check(_ code: CURLcode) throws(HTTPError) {
        guard code == CURLE_OK else {
            throw HTTPError(.protocolError, "libcurl refused a callback: \(String(cString: curl_easy_strerror(code)))")
        }
    }

    // MARK: - Callbacks (performing thread)

    private static func transfer(_ context: UnsafeMutableRawPointer?) -> CurlTransfer {
        Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
    }

    /// CURLOPT_WRITEFUNCTION: appends body bytes, or returns 0 (libcurl then fails with
    /// CURLE_WRITE_ERROR) when cancelled or when they would pass the limit.
    private static func receiveBody(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                                    _ context: UnsafeMutableRawPointer?) -> Int {
        let transfer = transfer(context)
        let length = size * count
        if transfer.cancelRequested.load(ordering: .relaxed) {
            transfer.abortReason = transfer.failure(.cancelled, "cancelled")
            return 0
        }
        guard transfer.body.count + length <= transfer.maxResponseBytes else {
            transfer.abortReason = transfer.failure(.bodyTooLarge,
                "the response body exceeds the limit of \(transfer.maxResponseBytes) bytes")
            return 0
        }
        guard let data, length > 0 else { return length }
        transfer.body.append(UnsafeBufferPointer(start: UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: length))
        return length
    }

    /// CURLOPT_HEADERFUNCTION: called once per header line, status lines included; a new
    /// status line (after a 1xx) starts a fresh set. Refuses a Content-Length over the limit.
    private static func receiveHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                                      _ context: UnsafeMutableRawPointer?) -> Int {
        let transfer = transfer(context)
        let length = size * count
        transfer.headerBytes += length
        guard transfer.headerBytes <= maxHeaderBytes else {
            transfer.abortReason = transfer.failure(.protocolError, "the response headers exceed \(maxHeaderBytes) bytes")
            return 0
        }
        guard let data, length > 0 else { return length }
        let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: length)
        let line = String(decoding: bytes, as: UTF8.self).trimmingHTTPWhitespace()
        if line.hasPrefix("HTTP/") {
            transfer.responseHeaders = [:]
            return length
        }
        guard let colon = line.firstIndex(of: ":") else { return length }
        let name = line[..<colon].trimmingHTTPWhitespace().lowercased()
        let value = line[line.index(after: colon)...].trimmingHTTPWhitespace()
        transfer.responseHeaders[name] = value
        if name == "content-length", transfer.expectsBody, let announced = Int(value) {
            guard announced <= transfer.maxResponseBytes else {
                transfer.abortReason = transfer.failure(.bodyTooLarge,
                    "the response's Content-Length \(announced) exceeds the limit of \(transfer.maxResponseBytes) bytes")
                return 0
            }
            transfer.body.reserve(exactly: announced)
        }
        return length
    }

    /// CURLOPT_XFERINFOFUNCTION: called often while data flows and about once a second
    /// while idle; non-zero aborts the transfer with CURLE_ABORTED_BY_CALLBACK.
    private static func reportProgress(_ context: UnsafeMutableRawPointer?) -> Int32 {
        transfer(context).cancelRequested.load(ordering: .relaxed) ? 1 : 0
    }

    // MARK: - Errors

    private func failure(_ kind: HTTPError.Kind, _ detail: String) -> HTTPError {
        HTTPError(kind, "\(method) \(redactedURL.text): \(detail)")
    }

    private func error(for code: CURLcode) -> HTTPError {
        if let abortReason { return abortReason }
        let kind: HTTPError.Kind
        switch code {
        case CURLE_ABORTED_BY_CALLBACK:
            return failure(.cancelled, "cancelled")
        case CURLE_OPERATION_TIMEDOUT:
            kind = .timeout
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            kind = .connectionFailed
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
            kind = .invalidURL
        case CURLE_FILESIZE_EXCEEDED:
            kind = .bodyTooLarge
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_ENGINE_INITFAILED,
             CURLE_SSL_CACERT_BADFILE, CURLE_SSL_SHUTDOWN_FAILED, CURLE_SSL_CRL_BADFILE, CURLE_SSL_ISSUER_ERROR,
             CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CLIENTCERT, CURLE_USE_SSL_FAILED:
            kind = .tls
        default:
            kind = .protocolError
        }
        let summary = String(cString: curl_easy_strerror(code))
        let detail = scrub(easy.errorText, removing: secrets)
        return failure(kind, detail.isEmpty || detail == summary ? summary : "\(summary) (\(detail))")
    }

    // MARK: - Helpers

    /// Whether `text` is a non-empty RFC 9110 token (method and header-name syntax).
    private static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
        }
    }

    /// The method for an error message: as given when it is a token, else a placeholder.
    private static func shown(_ method: String) -> String { isToken(method) ? method : "<invalid method>" }

    /// Milliseconds for libcurl, at least 1 (0 would mean "no timeout").
    private static func milliseconds(_ duration: Duration) -> Int {
        let ms = duration.wholeMilliseconds
        return ms == .max ? Int(Int32.max) : Int(clamping: max(1, ms))
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs, CR and LF.
    func trimmingHTTPWhitespace() -> String {
        let isWhitespace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isWhitespace($0) }), let last = lastIndex(where: { !isWhitespace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
