import CurlHTTP
import Foundation
import Synchronization
import Testing
import TestSupport

/// Bodies of megabytes, and `maxResponseBytes`: enforced from Content-Length and while the
/// body streams in. Serialized, and the only tests of this target moving megabytes, so that
/// the memory measurement sees this suite's transfers alone.
@Suite(.serialized) struct HTTPClientLargeBodyTests {
    let client = HTTPClient()

    @Test func aStreamedBodyOverTheLimitIsRefusedWithBoundedMemory() async throws {
        let fixture = try await HTTPFixture.shared()
        var request = HTTPRequest(url: fixture.url("/stream?bytes=\(50 * 1024 * 1024)"))
        request.maxResponseBytes = 20 * 1024 * 1024
        let before = try residentBytes()
        let sampler = ResidentMemorySampler()
        async let sampling: Void = offPool { sampler.run() }
        let error = await #expect(throws: HTTPError.self) { try await client.send(request) }
        sampler.stop()
        try await sampling
        #expect(error?.kind == .bodyTooLarge)
        #expect(error?.message.contains("20971520") == true)
        let growth = max(sampler.peak, try residentBytes()) - before
        #expect(growth < 40 * 1024 * 1024, "resident memory grew by \(growth / 1024) KiB")
    }

    @Test func binaryBodiesRoundTripByteExact() async throws {
        let fixture = try await HTTPFixture.shared()
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D]
        var generator = SplitMix64(seed: 42)
        let noise = (0..<(3 * 1024 * 1024)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let body = png + [UInt8](repeating: 0, count: 64) + (0...255).map { UInt8($0) } + noise + [0, 0]
        let response = try await client.send(HTTPRequest(method: "POST", url: fixture.url("/echo-body"), headers: [
            (name: "Content-Type", value: "image/png"),
        ], body: body))
        #expect(response.status == 200)
        #expect(response.body.count == body.count)
        #expect(response.body == body)
    }

    /// libcurl would ask a body over 1 MiB to wait for "100 Continue" (a second's stall
    /// with servers that never send it); the client turns that off.
    @Test func largeBodiesAreSentWithoutWaitingForContinue() async throws {
        let fixture = try await HTTPFixture.shared()
        let body = [UInt8](repeating: 0x41, count: 2 * 1024 * 1024)
        let response = try await client.send(HTTPRequest(method: "POST", url: fixture.url("/echo"), body: body))
        let echo = try Echo(response)
        #expect(echo.headers["expect"] == nil)
        #expect(echo.bodyBytes == body)
    }

    @Test func aBodyOfExactlyTheLimitIsAccepted() async throws {
        let fixture = try await HTTPFixture.shared()
        for route in ["/stream", "/fixed"] {
            var request = HTTPRequest(url: fixture.url("\(route)?bytes=100000"))
            request.maxResponseBytes = 100_000
            let response = try await client.send(request)
            #expect(response.body == fixturePattern(100_000), "\(route)")
        }
    }

    @Test func oneByteOverTheLimitIsRefused() async throws {
        let fixture = try await HTTPFixture.shared()
        for route in ["/stream", "/fixed"] {
            var request = HTTPRequest(url: fixture.url("\(route)?bytes=100001"))
            request.maxResponseBytes = 100_000
            let error = await #expect(throws: HTTPError.self, "\(route)") { try await client.send(request) }
            #expect(error?.kind == .bodyTooLarge, "\(route)")
        }
    }

    /// The fixture announces 100 MiB, sends 10 bytes and stalls for 30 s: only an early
    /// refusal from the Content-Length gives `.bodyTooLarge` (waiting would give `.timeout`).
    @Test func aContentLengthOverTheLimitIsRefusedBeforeTheBody() async throws {
        let fixture = try await HTTPFixture.shared()
        var request = HTTPRequest(url: fixture.url("/announce?length=\(100 * 1024 * 1024)"))
        request.timeout = .seconds(10)
        let error = await #expect(throws: HTTPError.self) { try await client.send(request) }
        #expect(error?.kind == .bodyTooLarge)
        #expect(error?.message.contains("Content-Length 104857600") == true)
    }
}

/// The process's resident set size (VmRSS in /proc/self/status), in bytes.
func residentBytes() throws -> Int {
    let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kibibytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else {
        throw TestSetupError("no VmRSS in /proc/self/status")
    }
    return kibibytes * 1024
}

/// Samples the resident set size every few milliseconds on its own thread and keeps the peak.
final class ResidentMemorySampler: Sendable {
    private let stopRequested = Atomic<Bool>(false)
    private let peakBytes = Atomic<Int>(0)

    /// The largest resident size seen.
    var peak: Int { peakBytes.load(ordering: .relaxed) }

    /// Samples until `stop` (blocks: run it with `offPool`).
    func run() {
        while !stopRequested.load(ordering: .relaxed) {
            if let bytes = try? residentBytes(), bytes > peak { peakBytes.store(bytes, ordering: .relaxed) }
            usleep(2_000)
        }
    }

    func stop() { stopRequested.store(true, ordering: .relaxed) }
}

/// A small deterministic generator for test bytes.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
