import DedicatedThreads
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// hiredis writes with write(2): a peer that closed its socket would raise SIGPIPE and
/// kill the process. Broken connections are handled as errors instead, so ignore it once.
let ignoreBrokenPipes: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()

/// Starts `body` on a dedicated OS thread, outside Swift's cooperative pool, so blocking
/// Redis I/O never starves async tasks. A connection cannot work without its thread.
func startDedicatedThread(name: String, _ body: @escaping @Sendable () -> Void) {
    ignoreBrokenPipes
    do {
        try DedicatedThread.start(body)
    } catch {
        fatalError("\(name): \(error)")
    }
}

/// A self-pipe: another thread writes a byte to wake a thread waiting in poll().
final class WakePipe: @unchecked Sendable {
    // Safe to share: the descriptors are fixed at init and only read()/write() are
    // called on them, which the kernel serialises.
    let readFD: Int32
    private let writeFD: Int32

    init() {
        var fds: [Int32] = [0, 0]
        let status = pipe(&fds)
        precondition(status == 0, "cannot create a pipe (errno \(errno))")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    deinit {
        close(readFD)
        close(writeFD)
    }

    /// Wakes the waiting thread (never blocks).
    func wake() {
        var byte: UInt8 = 1
        _ = write(writeFD, &byte, 1)
    }

    /// Empties the pipe after a wake-up.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(readFD, &buffer, 64) > 0 {}
    }

    /// Waits until woken or `timeout` passes; true when woken.
    @discardableResult
    func wait(timeout: Duration?) -> Bool {
        var fd = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
        let ms = timeout.map { Int32(clamping: max(0, $0.wholeMilliseconds)) } ?? -1
        let result = poll(&fd, 1, ms)
        return result > 0
    }
}
