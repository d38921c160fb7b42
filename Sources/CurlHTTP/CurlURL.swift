import CCurl

/// A URL parsed by libcurl's URL API (`CURLU`), the same parser the transfer then uses:
/// owns the handle and frees it in `deinit`.
final class CurlURL {
    /// The `CURLU *`, valid until `deinit`.
    let pointer: OpaquePointer

    /// Parses `text`; nil when libcurl rejects it (or is out of memory). No scheme is guessed.
    init?(_ text: String) {
        guard let handle = curl_url() else { return nil }
        guard curl_url_set(handle, CURLUPART_URL, text, 0) == CURLUE_OK else {
            curl_url_cleanup(handle)
            return nil
        }
        pointer = handle
    }

    deinit {
        curl_url_cleanup(pointer)
    }

    /// One component, such as `CURLUPART_HOST`, as written (not decoded); nil when absent.
    func part(_ which: CURLUPart) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        guard curl_url_get(pointer, which, &value, 0) == CURLUE_OK, let value else { return nil }
        defer { curl_free(value) }
        return String(cString: value)
    }
}
