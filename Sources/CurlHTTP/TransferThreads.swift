import DedicatedThreads

/// The threads blocking `curl_easy_perform` calls run on, never the cooperative pool: one
/// small pool per process, its threads named `iq-http-1`… and reused from one transfer to the
/// next. At most 32: a 33rd transfer at the same time waits in line for the first thread
/// free (its timeout counts from its start). A worker runs one transfer per job slot, the
/// Telegram front a few; 32 leaves room without letting a burst start a thread per request.
/// libcurl and OpenSSL keep a few KiB on the stack: 1 MiB is ample.
let transferThreads = ThreadPool(name: "iq-http", limit: 32, stackSize: 1024 * 1024)

/// Runs `body` on a transfer thread.
/// - Throws: `.protocolError` when the system refuses the pool's first thread.
func runOnTransferThread(_ body: @escaping @Sendable () -> Void) throws(HTTPError) {
    do {
        try transferThreads.run(body)
    } catch {
        throw HTTPError(.protocolError, "cannot start a thread for the transfer (\(error))")
    }
}
