#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// OS threads for blocking C calls (hiredis reads, `curl_easy_perform`), outside Swift's
/// cooperative pool: that pool is as wide as the CPU count (2 threads here), and one
/// blocking call on it starves every task. A Redis connection keeps one long-lived thread;
/// HTTP transfers share a `ThreadPool`.
public enum DedicatedThread {
    /// The system refused to start a thread.
    public struct StartFailure: Error, CustomStringConvertible, Sendable {
        /// `pthread_create`'s status.
        public let status: Int32
        public var description: String { "cannot start a thread (error \(status))" }
    }

    /// Runs `body` on a new detached thread with the given stack size and name (as `ps -L`
    /// and debuggers show it: at most 15 bytes, cut there; nil keeps the process's name).
    /// - Throws: `StartFailure` when the system refuses a thread.
    public static func start(name: String? = nil, stackSize: Int = 512 * 1024, _ body: @escaping @Sendable () -> Void) throws(StartFailure) {
        final class Box {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let run: @Sendable () -> Void
        if let name {
            run = {
                setName(name)
                body()
            }
        } else {
            run = body
        }
        let box = Unmanaged.passRetained(Box(run))
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

    /// Runs `body` on a new thread, as `start`, and returns once it has returned: the thread
    /// lives exactly while the caller awaits. Cancelling the caller does not stop `body`: tell
    /// it to stop (its owner's `close`, in a cancellation handler) and this returns when it has.
    /// - Throws: `StartFailure` when the system refuses a thread.
    public static func run(name: String? = nil, stackSize: Int = 512 * 1024,
                           _ body: @escaping @Sendable () -> Void) async throws(StartFailure) {
        let started: Result<Void, StartFailure> = await withCheckedContinuation { finished in
            do throws(StartFailure) {
                try start(name: name, stackSize: stackSize) {
                    body()
                    finished.resume(returning: .success(()))
                }
            } catch {
                finished.resume(returning: .failure(error))
            }
        }
        try started.get()
    }

    /// Names the calling thread (the kernel keeps 15 bytes).
    private static func setName(_ name: String) {
        let cut = String(decoding: name.utf8.prefix(15), as: UTF8.self)
        #if canImport(Glibc)
        _ = setThreadName?(pthread_self(), cut)
        #else
        _ = pthread_setname_np(cut)
        #endif
    }

    #if canImport(Glibc)
    /// glibc's `pthread_setname_np` (2.12+), which its Swift module does not export (it is
    /// declared for _GNU_SOURCE only); nil where the C library lacks it.
    private typealias SetName = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32
    private static let setThreadName: SetName? = {
        guard let symbol = dlsym(nil, "pthread_setname_np") else { return nil }
        return unsafeBitCast(symbol, to: SetName.self)
    }()
    #endif
}
