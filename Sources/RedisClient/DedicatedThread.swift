import DedicatedThreads
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Starts `body` on a dedicated OS thread, outside Swift's cooperative pool, so blocking
/// Redis I/O never starves async tasks. A connection cannot work without its thread.
/// (hiredis writes with write(2): the process ignores SIGPIPE, `BrokenPipes.ignore()`.)
func startDedicatedThread(name: String, _ body: @escaping @Sendable () -> Void) {
    do {
        try DedicatedThread.start(name: name, body)
    } catch {
        fatalError("\(name): \(error)")
    }
}

/// The self-pipe a connection's thread polls beside its socket (DedicatedThreads' own).
typealias WakePipe = DedicatedThreads.WakePipe
