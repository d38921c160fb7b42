import CurlHTTP
import Foundation
import Testing
import TestSupport

/// Bodies of megabytes, and `maxResponseBytes`: enforced from Content-Length and while the
/// body streams in. Serialized: the only tests of this target moving megabytes.
@Suite(.serialized) struct HTTPClientLargeBodyTests {
    let client = HTTPClient()

    /// The client hangs up once the limit is passed, so it never holds more than the limit:
    /// the fixture counts what it could write before the hang-up. (Kernel socket buffers on
    /// loopback take up to about 36 MiB more here; the body is 200 MiB.) Counted by the
    /// server rather than from our resident size, which other suites running at the same
    /// time in this process would disturb.
    @Test func aStreamedBodyOverTheLimitIsRefusedAndTheTransferStops() async throws {
        let fixture = try await HTTPFixture.shared()
        let id = uniqueHoldID("stream")
        var request = HTTPRequest(url: fixture.url("/stream?bytes=\(200 * 1024 * 1024)&id=\(id)"))
        request.maxResponseBytes = 20 * 1024 * 1024
        let error = await #expect(throws: HTTPError.self) { try await client.send(request) }
        #expect(error?.kind == .bodyTooLarge)
        #expect(error?.message.contains("20971520") == true)
        var sent = "running"
        for _ in 0..<250 where sent == "running" {
            sent = String(decoding: try await client.send(HTTPRequest(url: fixture.url("/sent?id=\(id)"))).body, as: UTF8.self)
            if sent == "running" { try await Task.sleep(for: .milliseconds(20)) }
        }
        let written = try #require(Int(sent), "the stream never ended: \(sent)")
        #expect(written < 100 * 1024 * 1024, "the fixture wrote \(written) bytes before the client hung up")
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
