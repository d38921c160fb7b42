#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Starts `body` on a new detached OS thread, outside Swift's cooperative pool, so that
/// a blocking `curl_easy_perform` never starves async tasks (the pool is as wide as the
/// CPU count: 2 threads here). The same pattern as RedisClient's, which is internal there.
///
/// Throws `.protocolError` when the system refuses a new thread.
func startDedicatedThread(_ body: @escaping @Sendable () -> Void) throws(HTTPError) {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body))
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    // libcurl and OpenSSL keep a few buffers of some KiB on the stack: 1 MiB is ample.
    pthread_attr_setstacksize(&attributes, 1024 * 1024)
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
        throw HTTPError(.protocolError, "cannot start a thread for the transfer (error \(status))")
    }
}
