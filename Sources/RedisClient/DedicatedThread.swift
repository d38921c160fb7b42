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
        try DedicatedThread.start(name: name, body)
    } catch {
        fatalError("\(name): \(error)")
    }
}

/// The self-pipe a connection's thread polls beside its socket (DedicatedThreads' own).
typealias WakePipe = DedicatedThreads.WakePipe
