import CHiredis
import COpenSSL
import DedicatedThreads
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One connection to Redis: the only type that touches hiredis pointers. hiredis connects
/// (name resolution, timeouts) and hands the descriptor over; from then on this type owns
/// the non-blocking socket, formats commands with hiredis and parses replies with hiredis'
/// reader, and moves the bytes itself, through a `TLSSession` for `rediss://` or with
/// send/read for plain TCP and unix sockets: one engine for every transport.
///
/// Not thread-safe: each socket is used by one dedicated thread. Every wait is a poll()
/// with our own deadline, so a blocking command such as BLPOP can take as long as its caller
/// allows, and a server that stops answering mid-reply cannot hold a thread.
final class RedisSocket {
    /// The socket's file descriptor, for poll().
    let fileDescriptor: Int32
    private let reader: UnsafeMutablePointer<redisReader>
    /// Set to nil only in deinit, before the descriptor closes.
    private var tls: TLSSession?
    /// Formatted commands; the first `written` bytes are sent.
    private var output: [UInt8] = []
    private var written = 0
    private let input = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    /// Connects (with TLS when the endpoint has it) and authenticates.
    /// - Throws: `.connectionFailed`, `.authentication`, `.tls`, `.timeout`.
    init(endpoint: RedisEndpoint, connectTimeout: Duration, clientName: String?) throws(RedisError) {
        let deadline = ContinuousClock.now + connectTimeout + .seconds(5)
        let fd = try Self.connect(endpoint, timeout: connectTimeout)
        var session: TLSSession?
        if let settings = endpoint.tls {
            do {
                let name: String
                if let serverName = settings.serverName {
                    name = serverName
                } else if case .tcp(let host, _) = endpoint.address {
                    name = host
                } else {
                    name = "localhost"
                }
                session = try TLSSession(context: TLSContext.shared(settings), fd: fd, name: name,
                                         presentsCertificate: settings.certificateFile != nil)
            } catch {
                Glibc.close(fd)
                throw error
            }
        }
        guard let made = redisReaderCreate() else {
            Glibc.close(fd)
            throw RedisError(.connectionFailed, "cannot allocate a reply reader")
        }
        fileDescriptor = fd
        reader = made
        tls = session
        // From here on deinit closes the descriptor.
        if let session {
            try session.handshake { events throws(RedisError) in try wait(for: events, deadline: deadline, interruptFD: nil) }
        }

        var handshake: [[String]] = []
        if let password = endpoint.password {
            handshake.append(endpoint.user.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if endpoint.database != 0 { handshake.append(["SELECT", String(endpoint.database)]) }
        if let clientName { handshake.append(["CLIENT", "SETNAME", clientName]) }
        // One round trip at least, so that what is wrong with the connection is a connect
        // error rather than a command's: a server that refuses our client certificate says so
        // after the TLS handshake (TLS 1.3), and a TLS port given plaintext closes it.
        if handshake.isEmpty { handshake.append(["PING"]) }
        for command in handshake { try append(command.map(\.redisBytes)) }
        try flush(deadline: deadline)
        for command in handshake {
            let reply: RESPValue
            do {
                reply = try readReply(deadline: deadline, interruptFD: nil)
            } catch where error.kind == .protocolError && session == nil && error.message.contains(#""\x15""#) {
                // 0x15 opens a TLS alert record: the port speaks TLS.
                throw RedisError(.tls, "\(endpoint) speaks TLS on this port: its URL is rediss://")
            } catch where error.kind == .connectionLost {
                let hint = session == nil ? " (a server going down, or a TLS port: its URL is then rediss://)" : ""
                throw RedisError(.connectionFailed, "\(endpoint) closed the connection before answering\(hint)")
            }
            if case .error(let text) = reply {
                let verb = command[0]
                if verb == "AUTH" {
                    let code = text.split(separator: " ").first.map(String.init) ?? "ERR"
                    throw RedisError(.authentication, "\(endpoint) refused the credentials (\(code))")
                }
                if verb == "SELECT" { throw RedisError(.authentication, "\(endpoint): cannot select the database: \(text)") }
                // CLIENT SETNAME failing is harmless
            }
        }
        session?.established = true
    }

    deinit {
        tls = nil  // first: its close_notify goes out on the descriptor, which is still ours
        Glibc.close(fileDescriptor)
        redisReaderFree(reader)
        input.deallocate()
    }

    /// Connects with hiredis and takes the descriptor: non-blocking, not inherited by child
    /// processes (a spawned program holding a copy would keep the connection open after we
    /// close it, and a cancelled BLPOP would live on in Redis), with TCP keepalive.
    private static func connect(_ endpoint: RedisEndpoint, timeout: Duration) throws(RedisError) -> Int32 {
        let limit = iq_timeval_ms(Int(timeout.wholeMilliseconds))
        let made: UnsafeMutablePointer<redisContext>?
        switch endpoint.address {
        case .tcp(let host, let port): made = redisConnectWithTimeout(host, Int32(port), limit)
        case .unix(let path): made = redisConnectUnixWithTimeout(path, limit)
        }
        guard let made else { throw RedisError(.connectionFailed, "cannot allocate a connection to \(endpoint)") }
        if made.pointee.err != 0 {
            let why = errorText(made)
            redisFree(made)
            throw RedisError(.connectionFailed, "cannot connect to \(endpoint): \(why)")
        }
        if case .tcp = endpoint.address { _ = redisEnableKeepAlive(made) }
        let fd = redisFreeKeepFd(made)
        _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }

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
        var formatted: UnsafeMutablePointer<CChar>?
        let length = flat.withUnsafeBufferPointer { buffer -> Int32 in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { argvlen in
                    redisFormatCommandArgv(&formatted, Int32(arguments.count), argv.baseAddress, argvlen.baseAddress)
                }
            }
        }
        guard length > 0, let formatted else { throw RedisError(.connectionLost, "cannot format a command (out of memory)") }
        defer { redisFreeCommand(formatted) }
        output.append(contentsOf: UnsafeRawBufferPointer(start: formatted, count: Int(length)))
    }

    /// Writes everything appended so far.
    func flush(deadline: ContinuousClock.Instant) throws(RedisError) {
        while written < output.count {
            let attempt = output.withUnsafeBytes { bytes in
                Result { () throws(RedisError) in try send(UnsafeRawBufferPointer(rebasing: bytes[written...])) }
            }
            let progress = try attempt.get()
            switch progress {
            case .moved(let count): written += count
            case .wouldBlock(let wantsWrite):
                guard try wait(for: Int16(wantsWrite ? POLLOUT : POLLIN), deadline: deadline, interruptFD: nil) else {
                    throw RedisError(.timeout, "timed out writing to Redis")
                }
            case .closed: throw RedisError(.connectionLost, "write failed: Server closed the connection")
            }
        }
        output.removeAll(keepingCapacity: output.capacity <= 1 << 20)
        written = 0
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
            try readAvailable()
        }
    }

    /// A complete reply already in the input buffer, if any; reads nothing from the socket.
    func bufferedReply() throws(RedisError) -> RESPValue? {
        var raw: UnsafeMutableRawPointer?
        if redisReaderGetReply(reader, &raw) != REDIS_OK {
            throw RedisError(.protocolError, "unreadable reply: \(readerError)")
        }
        guard let raw else { return nil }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(reply) }
        return Self.value(of: reply)
    }

    /// Whether an idle connection is still usable: false when the server closed it (or sent
    /// something nobody asked for) since the last reply. Costs one poll(2) with no wait; over
    /// TLS a readable socket may hold only the session's own records (tickets), read here.
    func isUsableWhenIdle() -> Bool {
        var fd = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        if poll(&fd, 1, 0) == 0 { return true }
        guard tls != nil, (try? readAvailable()) != nil else { return false }
        return reader.pointee.len == reader.pointee.pos  // nothing but TLS housekeeping arrived
    }

    /// Reads whatever the socket has now into the reply reader (after poll said readable).
    /// Over TLS it reads until the session has nothing decrypted left, so that poll() tells
    /// the truth afterwards.
    func readAvailable() throws(RedisError) {
        while true {
            switch try receive() {
            case .moved(let count):
                if redisReaderFeed(reader, input.baseAddress?.assumingMemoryBound(to: CChar.self), count) != REDIS_OK {
                    throw RedisError(.protocolError, "unreadable reply: \(readerError)")
                }
                if tls == nil, count < input.count { return }  // the kernel's buffer is empty
            case .wouldBlock: return
            case .closed: throw RedisError(.connectionLost, "connection to Redis lost: Server closed the connection")
            }
        }
    }

    private func send(_ bytes: UnsafeRawBufferPointer) throws(RedisError) -> TLSSession.Progress {
        if let tls { return try tls.write(bytes) }
        while true {
            let count = Glibc.send(fileDescriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if count >= 0 { return .moved(count) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock(wantsWrite: true)
            default: throw RedisError(.connectionLost, "write failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    private func receive() throws(RedisError) -> TLSSession.Progress {
        if let tls { return try tls.read(into: input) }
        while true {
            let count = Glibc.read(fileDescriptor, input.baseAddress, input.count)
            if count > 0 { return .moved(count) }
            if count == 0 { return .closed }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock(wantsWrite: false)
            default: throw RedisError(.connectionLost, "connection to Redis lost: \(String(cString: strerror(errno)))")
            }
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

    private var readerError: String {
        withUnsafeBytes(of: reader.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return bytes.isEmpty ? "error \(reader.pointee.err)" : String(decoding: bytes, as: UTF8.self)
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
