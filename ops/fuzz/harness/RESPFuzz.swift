// Fuzz target `resp`: bytes from a Redis server through hiredis' reply reader and into
// `RESPValue`, as `RedisSocket.bufferedReply()` does it: feed the reader, take every complete
// reply, convert it with `RedisSocket.value(of:)`, free it. Each value is then read the ways
// the callers read replies (`string`, `int`, `bytes`, `array`, `description`, `orThrow()`
// and the server error's code and detail).
//
// Input: the bytes as they would arrive on the socket. The first byte's low bits choose how
// they are cut into reads (0 = all at once, n = reads of n bytes), to exercise replies that
// arrive in pieces.
import CHiredis
@testable import RedisClient

@_cdecl("LLVMFuzzerTestOneInput")
public func respFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0, let reader = redisReaderCreate() else { return 0 }
    defer { redisReaderFree(reader) }
    let chunk = Int(data[0] & 0x0F)
    let body = UnsafeRawPointer(data + 1).assumingMemoryBound(to: CChar.self)
    let length = size - 1
    var offset = 0
    repeat {
        let count = chunk == 0 ? length : min(chunk, length - offset)
        if redisReaderFeed(reader, body + offset, count) != REDIS_OK { return 0 }
        offset += count
        while true {
            var raw: UnsafeMutableRawPointer?
            // A protocol error: the client drops the connection.
            if redisReaderGetReply(reader, &raw) != REDIS_OK { return 0 }
            guard let raw else { break }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            let value = RedisSocket.value(of: reply)
            freeReplyObject(reply)
            use(value)
        }
    } while offset < length
    return 0
}

private func use(_ value: RESPValue) {
    _ = value.string
    _ = value.int
    _ = value.bytes
    _ = value.isNull
    _ = value.description
    do {
        _ = try value.orThrow()
    } catch {
        precondition(error.kind == .server, "an error reply became \(error.kind)")
        _ = error.serverCode
        _ = error.serverDetail
        _ = error.isTransient
        _ = error.description
    }
    if let elements = value.array {
        for element in elements { use(element) }
    }
}
