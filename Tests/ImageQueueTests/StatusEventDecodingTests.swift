import ImageQueue
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decoding published events that do not look like ours.
@Suite struct StatusEventDecodingTests {
    private static func event(detailDepth depth: Int) -> [UInt8] {
        let detail = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        return Array(#"{"v":1,"id":"flux-01j","model":"flux","status":"generating","detail":\#(detail)}"#.utf8)
    }

    /// Runs `body` on a new thread with a stack of `stackSize` bytes and waits for it.
    private static func onThread(stackSize: Int, _ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, stackSize)
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let created = pthread_create(&thread, &attributes, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(created == 0, "pthread_create failed: \(created)")
        #if canImport(Glibc)
        pthread_join(thread, nil)
        #else
        pthread_join(thread!, nil)
        #endif
    }

    @Test func nestedDetailsWithinTheLimitAreKept() throws {
        let event = try StatusEvent(json: Self.event(detailDepth: 20))
        #expect(event.status == .generating)
        #expect(event.fields["detail"] != nil)
    }

    // Found in the fuzzing work (docs/FUZZING.md): JSONValue decodes recursively, a few KiB of
    // stack per level, and Foundation accepts 511 levels: on a 512 KiB stack (what Swift
    // concurrency's threads have on macOS) such an event killed the process.
    @Test func aDeeplyNestedEventIsRefusedNotAStackOverflow() {
        /// Written by the thread, read after it is joined.
        final class Outcome: @unchecked Sendable { var error: ImageQueueError? }
        let bytes = Self.event(detailDepth: 500)
        let outcome = Outcome()
        Self.onThread(stackSize: 512 * 1024) {
            do throws(ImageQueueError) { _ = try StatusEvent(json: bytes) } catch { outcome.error = error }
        }
        #expect(outcome.error?.code == .malformed)
    }
}
