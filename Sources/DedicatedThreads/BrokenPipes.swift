#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGPIPE, ignored by the process. hiredis writes with write(2), and libcurl's TLS writes
/// can raise SIGPIPE even with CURLOPT_NOSIGNAL: a peer that closed its socket would kill
/// the process. Our code handles broken connections as errors, so every process that runs it
/// (the executables, the in-process tests through TestSupport) ignores the signal once, at
/// its start. A program embedding RedisClient or CurlHTTP calls `ignore()` likewise.
public enum BrokenPipes {
    private static let ignored: Void = {
        _ = signal(SIGPIPE, SIG_IGN)
    }()

    /// Ignores SIGPIPE from now on (the first call does it; later calls do nothing).
    public static func ignore() {
        ignored
    }
}
