import CCurl

/// One libcurl easy handle (`CURL *`) and its error buffer: owned here, cleaned up in
/// `deinit`. Every setopt goes through one helper that turns a `CURLcode` into an `HTTPError`.
final class CurlEasyHandle {
    /// The `CURL *`, valid until `deinit`.
    let pointer: UnsafeMutableRawPointer
    /// libcurl writes a detailed message here when a transfer fails.
    private let errorBuffer: UnsafeMutablePointer<CChar>
    /// Owners of C objects the handle points into (URL, header list): released only after
    /// `curl_easy_cleanup`, since `deinit` runs before stored properties are released.
    private var attachments: [AnyObject] = []

    /// Makes a handle with its error buffer attached.
    ///
    /// Throws `.protocolError` when libcurl cannot allocate a handle.
    init() throws(HTTPError) {
        guard let handle = curl_easy_init() else {
            throw HTTPError(.protocolError, "libcurl could not make a handle")
        }
        pointer = handle
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        _ = iq_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
    }

    deinit {
        curl_easy_cleanup(pointer)
        errorBuffer.deallocate()
    }

    /// Sets an option taking a `long`.
    func set(_ option: CURLoption, _ value: Int) throws(HTTPError) {
        try check(iq_curl_setopt_long(pointer, option, value), option)
    }

    /// Sets an option taking a string (libcurl copies it).
    func set(_ option: CURLoption, string value: String) throws(HTTPError) {
        try check(iq_curl_setopt_string(pointer, option, value), option)
    }

    /// Sets an option taking a pointer, which must stay valid as long as libcurl says.
    func set(_ option: CURLoption, pointer value: UnsafeMutableRawPointer?) throws(HTTPError) {
        try check(iq_curl_setopt_pointer(pointer, option, value), option)
    }

    /// Sets an option taking a `curl_off_t`.
    func set(_ option: CURLoption, offset value: Int64) throws(HTTPError) {
        try check(iq_curl_setopt_off(pointer, option, curl_off_t(value)), option)
    }

    /// Sets a header list, kept alive until the handle is cleaned up.
    func set(_ option: CURLoption, list: CurlHeaderList) throws(HTTPError) {
        try check(iq_curl_setopt_slist(pointer, option, list.head), option)
        attachments.append(list)
    }

    /// Sets the URL to request (CURLOPT_CURLU), kept alive until the handle is cleaned up.
    func set(url: CurlURL) throws(HTTPError) {
        try check(iq_curl_setopt_pointer(pointer, CURLOPT_CURLU, UnsafeMutableRawPointer(url.pointer)), CURLOPT_CURLU)
        attachments.append(url)
    }

    /// Runs the transfer, blocking the calling thread until it ends: call it on a dedicated thread.
    func perform() -> CURLcode {
        errorBuffer[0] = 0
        return curl_easy_perform(pointer)
    }

    /// The final response's status code (0 when none arrived).
    func responseCode() -> Int {
        var code = 0
        _ = iq_curl_getinfo_long(pointer, CURLINFO_RESPONSE_CODE, &code)
        return code
    }

    /// libcurl's detailed message about the last failure, "" when it left none.
    var errorText: String { String(cString: errorBuffer) }

    private func check(_ code: CURLcode, _ option: CURLoption) throws(HTTPError) {
        guard code == CURLE_OK else {
            throw HTTPError(.protocolError, "libcurl refused option \(option.rawValue): \(String(cString: curl_easy_strerror(code)))")
        }
    }
}
