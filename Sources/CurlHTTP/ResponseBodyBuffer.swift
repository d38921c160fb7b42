/// The response body as it streams in, kept in 1 MiB segments so that memory grows with
/// the bytes received and never by Array's doubling (a body refused at 20 MiB has cost
/// 20 MiB, not 32). With a known Content-Length the one segment is reserved exactly.
struct ResponseBodyBuffer {
    private static let segmentSize = 1 << 20
    private var segments: [[UInt8]] = []
    /// Bytes received so far.
    private(set) var count = 0

    /// Reserves room for a body of `length` bytes, announced by Content-Length.
    mutating func reserve(exactly length: Int) {
        guard count == 0, length > 0 else { return }
        var segment: [UInt8] = []
        segment.reserveCapacity(length)
        segments = [segment]
    }

    /// Appends bytes received.
    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard !bytes.isEmpty else { return }
        let last = segments.count - 1
        if last >= 0, segments[last].capacity - segments[last].count >= bytes.count {
            segments[last].append(contentsOf: bytes)
        } else {
            var segment: [UInt8] = []
            segment.reserveCapacity(max(Self.segmentSize, bytes.count))
            segment.append(contentsOf: bytes)
            segments.append(segment)
        }
        count += bytes.count
    }

    /// The whole body, emptying the buffer (joining segments needs the body's size again,
    /// once, at the end).
    mutating func take() -> [UInt8] {
        defer {
            segments = []
            count = 0
        }
        if segments.count == 1 { return segments[0] }
        var body: [UInt8] = []
        body.reserveCapacity(count)
        for index in segments.indices {
            body.append(contentsOf: segments[index])
            segments[index] = []
        }
        return body
    }
}
