#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A self-pipe: another thread writes a byte to wake a thread waiting in poll().
public final class WakePipe: @unchecked Sendable {
    // Safe to share: the descriptors are fixed at init and only read()/write() are
    // called on them, which the kernel serialises.
    /// The end to poll for reading.
    public let readFD: Int32
    private let writeFD: Int32

    public init() {
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
    public func wake() {
        var byte: UInt8 = 1
        _ = write(writeFD, &byte, 1)
    }

    /// Empties the pipe after a wake-up.
    public func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(readFD, &buffer, 64) > 0 {}
    }

    /// Waits until woken or `timeout` passes; true when woken.
    @discardableResult
    public func wait(timeout: Duration?) -> Bool {
        var fd = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
        let ms = timeout.map { Int32(clamping: max(0, $0.wholeMilliseconds)) } ?? -1
        let result = poll(&fd, 1, ms)
        return result > 0
    }
}
