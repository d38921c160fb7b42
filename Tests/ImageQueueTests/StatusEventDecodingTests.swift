import DedicatedThreads
import ImageQueue
import Testing

/// Decoding published events that do not look like ours.
@Suite struct StatusEventDecodingTests {
    private static func event(detailDepth depth: Int) -> [UInt8] {
        let detail = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        return Array(#"{"v":1,"id":"flux-01j","model":"flux","status":"generating","detail":\#(detail)}"#.utf8)
    }

    /// Runs `body` on a dedicated thread with a stack of `stackSize` bytes and waits for it.
    private static func onThread(stackSize: Int, _ body: @escaping @Sendable () -> Void) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            do {
                try DedicatedThread.start(stackSize: stackSize) {
                    body()
                    done.resume()
                }
            } catch {
                done.resume(throwing: error)
            }
        }
    }

    @Test func nestedDetailsWithinTheLimitAreKept() throws {
        let event = try StatusEvent(json: Self.event(detailDepth: 20))
        #expect(event.status == .generating)
        #expect(event.fields["detail"] != nil)
    }

    // Found in the fuzzing work (docs/FUZZING.md): JSONValue decodes recursively, a few KiB of
    // stack per level, and Foundation accepts 511 levels: on a 512 KiB stack (what Swift
    // concurrency's threads have on macOS) such an event killed the process.
    @Test func aDeeplyNestedEventIsRefusedNotAStackOverflow() async throws {
        /// Written by the thread, read after it is joined.
        final class Outcome: @unchecked Sendable { var error: ImageQueueError? }
        let bytes = Self.event(detailDepth: 500)
        let outcome = Outcome()
        try await Self.onThread(stackSize: 512 * 1024) {
            do throws(ImageQueueError) { _ = try StatusEvent(json: bytes) } catch { outcome.error = error }
        }
        #expect(outcome.error?.code == .malformed)
    }
}
