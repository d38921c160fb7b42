import CCurl

/// A `curl_slist` of request header lines: owned here, freed in `deinit`; it must outlive
/// the easy handle that sends it, so `CurlEasyHandle` keeps it.
final class CurlHeaderList {
    /// The list's head, nil while empty.
    private(set) var head: UnsafeMutablePointer<curl_slist>?

    init() {}

    deinit {
        curl_slist_free_all(head)
    }

    /// Appends one line such as "Accept: application/json" (libcurl copies it).
    ///
    /// Throws `.protocolError` when libcurl is out of memory.
    func append(_ line: String) throws(HTTPError) {
        guard let newHead = curl_slist_append(head, line) else {
            throw HTTPError(.protocolError, "libcurl could not build the header list")
        }
        head = newHead
    }
}
