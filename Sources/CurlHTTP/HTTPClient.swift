/// The HTTP client the worker calls image-generation and LLM endpoints with, over libcurl.
///
/// Each `send` uses a fresh connection (one easy handle per request) and runs the blocking
/// transfer on one of a small pool of OS threads, never on Swift's cooperative pool. Redirects are not
/// followed: a 3xx comes back as the response. TLS certificates and host names are always
/// verified. Proxies named by the usual environment variables (`https_proxy`, `no_proxy`…)
/// are honoured, as libcurl does by default.
public final class HTTPClient: Sendable {
    /// Makes a client. libcurl is initialised once per process, by the first `send`: its TLS
    /// library's set-up costs about 2 MiB of memory that a process which never sends (a
    /// worker with the placeholder backend) need not pay.
    public init() {}

    /// Sends `request` and returns the complete response, whatever its status: non-2xx
    /// statuses are returned, not thrown.
    ///
    /// Cancelling the calling task aborts the transfer (at once while data flows, within
    /// about a second while the connection is idle).
    ///
    /// Throws `HTTPError`: `.invalidURL`, `.connectionFailed`, `.timeout`, `.bodyTooLarge`
    /// (Content-Length or bytes received over `maxResponseBytes`), `.tls`, `.cancelled`,
    /// or `.protocolError` for anything else. Its message holds no secrets.
    public func send(_ request: HTTPRequest) async throws(HTTPError) -> HTTPResponse {
        try CurlGlobal.ensureInitialised()
        let transfer = try CurlTransfer(request)
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<HTTPResponse, HTTPError>, Never>) in
                do throws(HTTPError) {
                    try runOnTransferThread { continuation.resume(returning: transfer.perform()) }
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        } onCancel: {
            transfer.cancel()
        }
        return try result.get()
    }
}
