import MultipartKit

/// A multipart/form-data body (RFC 7578) for uploads, serialised by MultipartKit.
struct MultipartForm {
    private var parts: [MultipartPart] = []
    /// A random boundary: 128 bits, so it cannot plausibly occur inside an image.
    let boundary = "imagequeue-" + (0..<4).map { _ in String(UInt32.random(in: .min ... .max), radix: 16) }.joined()

    /// The Content-Type header value, with the boundary.
    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    /// Adds a text field. `name` is one of ours: a plain token, never user text.
    mutating func add(_ name: String, _ value: String) {
        parts.append(MultipartPart(headers: ["Content-Disposition": "form-data; name=\"\(name)\""], body: value))
    }

    /// Adds a file field.
    mutating func addFile(_ name: String, fileName: String, contentType: String, bytes: [UInt8]) {
        let safeName = String(fileName.unicodeScalars.filter { $0.isASCII && $0 != "\"" && $0 != "\\" && $0.value >= 0x20 })
        parts.append(MultipartPart(headers: ["Content-Disposition": "form-data; name=\"\(name)\"; filename=\"\(safeName)\"",
                                             "Content-Type": contentType],
                                   body: bytes))
    }

    /// The serialised body.
    func body() -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(parts.reduce(256) { $0 + $1.body.readableBytes + 128 })
        // Serialising into a buffer cannot fail: MultipartKit's serializer only writes.
        try? MultipartSerializer().serialize(parts: parts, boundary: boundary, into: &buffer)
        return Array(buffer.readableBytesView)
    }
}
