import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking work (process waits, sleeps, pipe reads) on a new OS thread and awaits
/// its result, so a test never blocks one of Swift's cooperative threads: there are only
/// as many as cores (2 here), and one blocked thread stalls every other test's tasks.
/// The thread's signal mask is empty, so a child process it starts takes signals normally.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let work = Unmanaged.passRetained(PlainThreadWork { continuation.resume(with: Result { try body() }) })
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { argument in
            var nothing = sigset_t()
            sigemptyset(&nothing)
            pthread_sigmask(SIG_SETMASK, &nothing, nil)
            Unmanaged<PlainThreadWork>.fromOpaque(argument!).takeRetainedValue().run()
            return nil
        }, work.toOpaque())
        if status == 0 {
            pthread_detach(thread)
        } else {
            work.release()
            continuation.resume(throwing: TestSetupError("cannot start a thread (\(status))"))
        }
    }
}

private final class PlainThreadWork {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}
