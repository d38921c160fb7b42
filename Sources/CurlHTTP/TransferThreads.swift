import DedicatedThreads

/// Starts `body` on a dedicated OS thread, so a blocking `curl_easy_perform` never runs on
/// the cooperative pool. libcurl and OpenSSL keep a few KiB on the stack: 1 MiB is ample.
/// - Throws: `.protocolError` when the system refuses a new thread.
func startDedicatedThread(_ body: @escaping @Sendable () -> Void) throws(HTTPError) {
    do {
        try DedicatedThread.start(stackSize: 1024 * 1024, body)
    } catch {
        throw HTTPError(.protocolError, "cannot start a thread for the transfer (\(error))")
    }
}
