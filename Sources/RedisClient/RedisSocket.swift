import CHiredis
import DedicatedThreads
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One hiredis connection: the only type that touches hiredis pointers. Owns its
/// `redisContext` and frees it in `deinit`; no reply pointer leaves the method that read it.
///
/// Not thread-safe: each socket is used by one dedicated thread. Reads never rely on
/// hiredis' socket timeout (a timed-out hiredis read breaks the connection for good):
/// every read first waits in `poll()` with our own deadline, so a blocking command such as
/// BLPOP can take as long as its caller allows.
final class RedisSocket {
    private let context: UnsafeMutablePointer<redisContext>

    /// Connects and authenticates.
    /// - Throws: `.connectionFailed`, `.authentication`, `.timeout`.
    init(endpoint: RedisEndpoint, connectTimeout: Duration, clientName: String?) throws(RedisError) {
        let timeout = iq_timeval_ms(Int(connectTimeout.wholeMilliseconds))
        let made: UnsafeMutablePointer<redisContext>?
        switch endpoint.address {
        case .tcp(let host, let port): made = redisConnectWithTimeout(host, Int32(port), timeout)
        case .unix(let path): made = redisConnectUnixWithTimeout(path, timeout)
        }
        guard let made else { throw RedisError(.connectionFailed, "cannot allocate a connection to \(endpoint)") }
        if made.pointee.err != 0 {
            let why = Self.errorText(made)
            redisFree(made)
            throw RedisError(.connectionFailed, "cannot connect to \(endpoint): \(why)")
        }
        context = made
        // Not inherited by child processes: a spawned program holding a copy would keep the
        // connection open after we close it (a cancelled BLPOP would live on in Redis).
        _ = fcntl(made.pointee.fd, F_SETFD, fcntl(made.pointee.fd, F_GETFD) | FD_CLOEXEC)
        // Bounds a write to a peer that stopped reading; reads are bounded by poll().
        _ = redisSetTimeout(context, iq_timeval_ms(30_000))
        if case .tcp = endpoint.address { _ = redisEnableKeepAlive(context) }

        let deadline = ContinuousClock.now + connectTimeout + .seconds(5)
        var handshake: [[String]] = []
        if let password = endpoint.password {
            handshake.append(endpoint.user.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if endpoint.database != 0 { handshake.append(["SELECT", String(endpoint.database)]) }
        if let clientName { handshake.append(["CLIENT", "SETNAME", clientName]) }
        for command in handshake { try append(command.map(\.redisBytes)) }
        try flush(deadline: deadline)
        for (index, command) in handshake.enumerated() {
            let reply = try readReply(deadline: deadline, interruptFD: nil)
            if case .error(let text) = reply {
                let verb = command[0]
                if verb == "AUTH" {
                    let code = text.split(separator: " ").first.map(String.init) ?? "ERR"
                    throw RedisError(.authentication, "\(endpoint) refused the credentials (\(code))")
                }
                if verb == "SELECT" { throw RedisError(.authentication, "\(endpoint): cannot select the database: \(text)") }
                _ = index  // CLIENT SETNAME failing is harmless
            }
        }
    }

    deinit { redisFree(context) }

    /// The socket's file descriptor, for poll().
    var fileDescriptor: Int32 { context.pointee.fd }

    /// Formats one command into the output buffer (nothing is sent yet).
    func append(_ arguments: [[UInt8]]) throws(RedisError) {
        var flat: [UInt8] = []
        var offsets: [Int] = []
        var lengths: [Int] = []
        offsets.reserveCapacity(arguments.count)
        lengths.reserveCapacity(arguments.count)
        for argument in arguments {
            offsets.append(flat.count)
            lengths.append(argument.count)
            flat.append(contentsOf: argument)
        }
        flat.append(0)  // never empty, so the buffer has a base address
        let status = flat.withUnsafeBufferPointer { buffer -> Int32 in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { argvlen in
                    redisAppendCommandArgv(context, Int32(arguments.count), argv.baseAddress, argvlen.baseAddress)
                }
            }
        }
        if status != REDIS_OK { throw RedisError(.connectionLost, "cannot queue a command: \(Self.errorText(context))") }
    }

    /// Writes everything appended so far.
    func flush(deadline: ContinuousClock.Instant) throws(RedisError) {
        var done: Int32 = 0
        while done == 0 {
            guard try wait(for: Int16(POLLOUT), deadline: deadline, interruptFD: nil) else {
                throw RedisError(.timeout, "timed out writing to Redis")
            }
            if redisBufferWrite(context, &done) != REDIS_OK {
                throw RedisError(.connectionLost, "write failed: \(Self.errorText(context))")
            }
        }
    }

    /// Reads the next reply, waiting until `deadline`.
    /// - Parameter interruptFD: a descriptor whose readability aborts the wait (`.cancelled`).
    /// - Throws: `.timeout`, `.connectionLost`, `.cancelled`, `.protocolError`.
    func readReply(deadline: ContinuousClock.Instant, interruptFD: Int32?) throws(RedisError) -> RESPValue {
        while true {
            if let value = try bufferedReply() { return value }
            guard try wait(for: Int16(POLLIN), deadline: deadline, interruptFD: interruptFD) else {
                throw RedisError(.timeout, "no reply from Redis in time")
            }
            if redisBufferRead(context) != REDIS_OK {
                throw RedisError(.connectionLost, "connection to Redis lost: \(Self.errorText(context))")
            }
        }
    }

    /// A complete reply already in the input buffer, if any; reads nothing from the socket.
    func bufferedReply() throws(RedisError) -> RESPValue? {
        var reply: UnsafeMutablePointer<redisReply>?
        if iq_redis_get_reply(context, &reply) != REDIS_OK {
            throw RedisError(.protocolError, "unreadable reply: \(Self.errorText(context))")
        }
        guard let reply else { return nil }
        defer { freeReplyObject(reply) }
        return Self.value(of: reply)
    }

    /// Whether an idle connection is still usable: false when the server closed it (or sent
    /// something nobody asked for) since the last reply. Costs one poll(2) with no wait.
    func isUsableWhenIdle() -> Bool {
        var fd = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&fd, 1, 0)
        if ready == 0 { return true }
        return false  // readable while idle: EOF, an error, or stray data; start afresh
    }

    /// Reads whatever the socket has now into the input buffer (after poll said readable).
    func readAvailable() throws(RedisError) {
        if redisBufferRead(context) != REDIS_OK {
            throw RedisError(.connectionLost, "connection to Redis lost: \(Self.errorText(context))")
        }
    }

    /// Waits until the socket is ready for `events`; false on deadline.
    private func wait(for events: Int16, deadline: ContinuousClock.Instant, interruptFD: Int32?) throws(RedisError) -> Bool {
        var fds = [pollfd(fd: fileDescriptor, events: events, revents: 0)]
        if let interruptFD { fds.append(pollfd(fd: interruptFD, events: Int16(POLLIN), revents: 0)) }
        while true {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return false }
            let result = poll(&fds, nfds_t(fds.count), Int32(min(remaining.wholeMilliseconds + 1, 60_000)))
            if result < 0 {
                if errno == EINTR { continue }
                throw RedisError(.connectionLost, "poll failed (errno \(errno))")
            }
            if result == 0 { continue }
            if fds.count > 1, fds[1].revents != 0 { throw RedisError(.cancelled, "interrupted") }
            if fds[0].revents != 0 { return true }
        }
    }

    /// Copies a hiredis reply (and its elements) into a `RESPValue`; the reply stays the
    /// caller's to free. Internal rather than private so the fuzz harness can reach it
    /// (ops/fuzz/harness/RESPFuzz.swift).
    static func value(of reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STATUS: return .status(text(r))
        case REDIS_REPLY_ERROR: return .error(text(r))
        case REDIS_REPLY_INTEGER: return .integer(Int64(r.integer))
        case REDIS_REPLY_NIL: return .null
        case REDIS_REPLY_STRING:
            guard let str = r.str else { return .bulk([]) }
            return .bulk(Array(UnsafeRawBufferPointer(start: str, count: Int(r.len))))
        case REDIS_REPLY_ARRAY:
            guard let element = r.element else { return .array([]) }
            return .array((0..<Int(r.elements)).map { index in
                element[index].map { value(of: $0) } ?? .null
            })
        default:
            return .error("PROTOCOL unknown reply type \(r.type)")
        }
    }

    private static func text(_ r: redisReply) -> String {
        guard let str = r.str else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: str, count: Int(r.len)), as: UTF8.self)
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return bytes.isEmpty ? "error \(context.pointee.err)" : String(decoding: bytes, as: UTF8.self)
        }
    }
}
