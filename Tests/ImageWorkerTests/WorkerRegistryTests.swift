import Foundation
import ImageQueue
import Testing
import TestSupport

/// A running worker is listed in `<prefix>:workers` with a JSON entry; a graceful shutdown
/// takes both away.
@Suite(.timeLimit(.minutes(1)), .runsClients)
struct WorkerRegistryTests {
    @Test func aRunningWorkerIsRegisteredAndGracefulShutdownDeregistersIt() async throws {
        // A 30 s lease: the entry is refreshed every 10 s and lives 30 s. With the fixture's
        // 3 s lease it lives 3 s, and a test process stalled that long on a loaded machine
        // (the worker runs in it) lets it expire between two reads, as it should.
        let fixture = try await WorkerFixture.make { $0.lease = .seconds(30) }
        defer { fixture.close() }
        let workerID = "registry-\(UUID().uuidString.prefix(8))"
        let entryKey = fixture.keys.worker(workerID)
        #expect(fixture.keys.workers == "\(fixture.configuration.queue.keyPrefix):workers")

        let running = try fixture.startWorker(id: workerID)
        do {
            let deadline = ContinuousClock.now + .seconds(10)
            while try await fixture.redis.send("ZSCORE", fixture.keys.workers, workerID).isNull {
                if ContinuousClock.now > deadline { throw TestSetupError("the worker never registered") }
                try await Task.sleep(for: .milliseconds(20))
            }
            let json = try #require(try await fixture.redis.send("GET", entryKey).bytes)
            let entry = try JSONDecoder().decode(WorkerInfo.self, from: Data(json))
            #expect(entry.id == workerID)
            #expect(entry.models == ["flux", "sdxl"])
            #expect(entry.pid == Int(ProcessInfo.processInfo.processIdentifier))
            #expect(entry.currentJobs.isEmpty)
            let ttl = try await fixture.redis.send("PTTL", entryKey).int ?? -2
            #expect(ttl > 0, "the entry expires if the worker dies")
            #expect(try await fixture.inspector.workers().map(\.id) == [workerID])
        } catch {
            try? await running.stop()
            throw error
        }
        try await running.stop()

        #expect(try await fixture.redis.send("ZSCORE", fixture.keys.workers, workerID).isNull)
        #expect(try await fixture.redis.send("EXISTS", entryKey).int == 0)
    }
}
