#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// OS threads for blocking C calls (hiredis reads, `curl_easy_perform`), outside Swift's
/// cooperative pool: that pool is as wide as the CPU count (2 threads here), and one
/// blocking call on it starves every task.
public enum DedicatedThread {
    /// The system refused to start a thread.
    public struct StartFailure: Error, CustomStringConvertible, Sendable {
        /// `pthread_create`'s status.
        public let status: Int32
        public var description: String { "cannot start a thread (error \(status))" }
    }

    /// Runs `body` on a new detached thread with the given stack size.
    /// - Throws: `StartFailure` when the system refuses a thread.
    public static func start(stackSize: Int = 512 * 1024, _ body: @escaping @Sendable () -> Void) throws(StartFailure) {
        final class Box {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body))
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attributes, stackSize)
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let status = pthread_create(&thread, &attributes, { argument in
            Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        pthread_attr_destroy(&attributes)
        guard status == 0 else {
            box.release()
            throw StartFailure(status: status)
        }
    }
}
