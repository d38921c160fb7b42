import CCurl
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libcurl's process-wide set-up, done once before the first handle is made.
enum CurlGlobal {
    /// The result of the one `curl_global_init` call (Swift runs a static initialiser once,
    /// thread-safely). The process ignores SIGPIPE (`BrokenPipes.ignore()`, called by the
    /// executables): libcurl's TLS writes can raise it even with NOSIGNAL.
    private static let initialisation: CURLcode = curl_global_init(Int(CURL_GLOBAL_ALL))

    /// Initialises libcurl if not done yet.
    ///
    /// Throws `.protocolError` when libcurl cannot initialise (e.g. its TLS library failed).
    static func ensureInitialised() throws(HTTPError) {
        let code = initialisation
        guard code == CURLE_OK else {
            throw HTTPError(.protocolError, "libcurl could not initialise: \(String(cString: curl_easy_strerror(code)))")
        }
    }
}
