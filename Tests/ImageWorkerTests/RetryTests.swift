import ImageQueue
import Testing
import TestSupport

/// Transient backend failures are retried inside the lease, with `retrying` events.
@Suite(.timeLimit(.minutes(1)), .runsClients)
struct RetryTests {
    @Test func a429WithRetryAfterIsRetriedNoSoonerThanAsked() async throws {
        // retryMaxDelay caps a Retry-After at 4× itself; 1 s keeps that cap (4 s) above the
        // 1 s this service asks for.
        let fixture = try await WorkerFixture.make { $0.retryMaxDelay = .seconds(1) }
        defer { fixture.close() }
        try await fixture.fake.script("flux", [["status": 429, "headers": ["Retry-After": "1"]]])
        let info = try await fixture.withWorkers { _ in
            try await fixture.waitForEnd(try await fixture.enqueue("a busy harbour", enhance: false))
        }
        #expect(info.status == .completed)

        let retrying = fixture.events.events(of: info.id).filter { $0.status == .retrying }
        try #require(retrying.count == 1)
        #expect(retrying[0].error?.code == "backend_busy")
        #expect(retrying[0].error?.message == "The image service is busy right now. Please try again in a moment.")
        let delay = retrying[0].fields["retry"]?.objectValue?["delay_ms"]?.intValue ?? -1
        #expect(delay >= 1000, "retry.delay_ms = \(delay)")

        let requests = try await fixture.requests("flux")
        try #require(requests.count == 2)
        let gap = requests[1].timeMilliseconds - requests[0].timeMilliseconds
        #expect(gap >= 990, "the retry came \(gap) ms after the 429")
    }

    @Test func two503sThenSuccessCompletesAfterThreeRequests() async throws {
        let fixture = try await WorkerFixture.make()
        defer { fixture.close() }
        try await fixture.fake.script("sdxl", [["status": 503], ["status": 503]])
        let info = try await fixture.withWorkers { _ in
            try await fixture.waitForEnd(try await fixture.enqueue("a lantern in fog", model: "sdxl", enhance: false))
        }
        #expect(info.status == .completed)
        #expect(info.attempt == 1, "retries happen inside one claim")
        #expect(info.error == nil)
        #expect(try await fixture.requests("sdxl").count == 3)

        let events = fixture.events.events(of: info.id)
        let retrying = events.filter { $0.status == .retrying }
        #expect(retrying.count == 2)
        #expect(retrying.allSatisfy { $0.error?.code == "backend_error" })
        #expect(retrying.compactMap { $0.fields["retry"]?.objectValue?["attempt"]?.intValue } == [1, 2])
        #expect(retrying.allSatisfy { $0.fields["retry"]?.objectValue?["of"]?.intValue == 3 })
        #expect(events.last?.status == .completed)
    }
}
