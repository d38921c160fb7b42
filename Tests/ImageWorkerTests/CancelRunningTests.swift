import Foundation
import ImageQueue
@testable import ImageWorker
import RedisClient
import Testing
import TestSupport

/// A cancel reaches the worker running the job: it stops the backend call, the job ends
/// `cancelled`, and the slot takes the next job at once.
@Suite(.runsClients) struct CancelRunningTests {
    @Test func aRunningJobIsStoppedWithinTwoSecondsAndTheNextJobStarts() async throws {
        let fixture = try await WorkerFixture.make { $0.lease = .seconds(60) }
        defer { fixture.close() }
        // The first render would take a minute; later ones answer at once.
        try await fixture.fake.script("flux", [["delay_ms": 60_000]])
        try await fixture.withWorkers(models: ["flux"]) { _ in
            let slow = try await fixture.enqueue("a render nobody wants any more", enhance: false)
            let next = try await fixture.enqueue("the next one", enhance: false)
            try await eventually(within: .seconds(20)) { try await fixture.requests("flux").contains { $0.prompt == "a render nobody wants any more" } }
            let cancelledAt = ContinuousClock.now
            #expect(try await fixture.client.cancel(slow) == .wasRunning)
            let info = try await fixture.waitForEnd(slow)
            #expect(info.status == .cancelled)
            // The worker dropped its transfer: its one slot took the next job, which completed
            // long before the minute the first answer would take (within about 2 s on a quiet
            // machine; the bound allows a loaded one and stays below the 20 s heartbeat of a 60 s
            // lease, the backstop).
            let after = try await fixture.waitForEnd(next)
            #expect(ContinuousClock.now - cancelledAt < .seconds(15))
            #expect(after.status == .completed)
            // The cancelled job stays cancelled: nothing the worker did later overwrote it.
            let final = try await fixture.inspector.status(slow)
            #expect(final.status == .cancelled && final.result == nil)
            #expect(fixture.events.events(of: slow).last?.status == .cancelled)
            #expect(!fixture.events.events(of: slow).contains { $0.status == .completed || $0.status == .failed || ($0.status == .queued && $0.revision > 1) })
        }
    }

    @Test func aCancelMissedOnPubSubIsCaughtAtTheNextHeartbeat() async throws {
        // A 3 s lease: heartbeats every second. The cancel message is published before the
        // worker's listener could see it (the job is cancelled by the script directly with an
        // empty cancel channel), so only the heartbeat can tell the worker.
        let fixture = try await WorkerFixture.make { $0.lease = .seconds(3) }
        defer { fixture.close() }
        try await fixture.fake.script("flux", [["delay_ms": 60_000]])
        try await fixture.withWorkers(models: ["flux"]) { _ in
            let slow = try await fixture.enqueue("missed message", enhance: false)
            try await eventually(within: .seconds(20)) { try await fixture.requests("flux").contains { $0.prompt == "missed message" } }
            let id = try JobID(slow)
            let keys = fixture.keys
            let source = try #require(ImageQueueScripts.sources["cancelJob"])
            let modelKeys = [keys.pending("flux"), keys.active("flux"), keys.dead("flux"), keys.meta("flux"), keys.wake("flux"),
                             keys.sequence("flux"), keys.fence("flux"), keys.jobPrefix("flux")]
            let words: [any RedisArgument] = ["EVAL", source, "8"] + modelKeys + ["flux", keys.events("flux"), slow, "0", "", keys.preview(id)]
            let reply = try await fixture.redis.send(RedisCommand(arguments: words.map(\.redisBytes)))
            #expect(reply.int == 2)
            // Its one slot takes the next job only once the heartbeat has stopped the first.
            let next = try await fixture.enqueue("after the missed one", enhance: false)
            #expect(try await fixture.waitForEnd(next).status == .completed)
            #expect(try await fixture.inspector.status(slow).status == .cancelled)
        }
    }

    @Test func progressRisesInGeneratingEventsAtMostEveryHalfSecond() async throws {
        let fixture = try await WorkerFixture.make { configuration in
            configuration.backend = .placeholder
            configuration.placeholderDelay = .seconds(3)
        }
        defer { fixture.close() }
        try await fixture.withWorkers(models: ["flux"]) { _ in
            let id = try await fixture.enqueue("a slow sunrise", enhance: false)
            let info = try await fixture.waitForEnd(id)
            #expect(info.status == .completed)
            let progress = fixture.events.events(of: id).filter { $0.status == .generating }.compactMap { $0.fields["progress"]?.doubleValue }
            #expect(progress.count >= 2, "\(progress)")
            #expect(progress == progress.sorted() && Set(progress).count == progress.count, "rising: \(progress)")
            #expect(progress.allSatisfy { (0...1).contains($0) })
            // 10 reports in 3 s, published at most every 500 ms: never all ten.
            #expect(progress.count <= 8, "\(progress)")
        }
    }
}
