import ImageQueue
import Testing
import TestSupport

/// How jobs are scheduled across models and workers: models never wait for each other;
/// one model at concurrency 1 runs its jobs one at a time, in order, across workers.
@Suite(.timeLimit(.minutes(1)), .runsClients)
struct SchedulingTests {
    @Test func aSlowModelDoesNotHoldUpAnother() async throws {
        let fixture = try await WorkerFixture.make()
        defer { fixture.close() }
        // Far longer than the sdxl job takes, however loaded the machine.
        try await fixture.fake.setDelay("flux", milliseconds: 20_000)
        try await fixture.withWorkers { _ in
            let fluxID = try await fixture.enqueue("a slow glacier", model: "flux", enhance: false)
            let sdxlID = try await fixture.enqueue("a quick hummingbird", model: "sdxl", enhance: false)

            let sdxl = try await fixture.waitForEnd(sdxlID)
            let fluxMeanwhile = try await fixture.inspector.status(fluxID)
            #expect(sdxl.status == .completed)
            #expect(fluxMeanwhile.status == .generating, "the flux job should still be running, it is \(fluxMeanwhile.status)")

            let flux = try await fixture.waitForEnd(fluxID)
            #expect(flux.status == .completed)
            let sdxlFinished = try #require(sdxl.finishedAt)
            let fluxFinished = try #require(flux.finishedAt)
            let fluxStarted = try #require(flux.startedAt)
            #expect(sdxlFinished < fluxFinished)
            #expect(fluxStarted < sdxlFinished, "the sdxl job ran while the flux job was in progress")
        }
    }

    @Test func oneModelAtConcurrencyOneRunsInOrderAcrossTwoWorkers() async throws {
        let fixture = try await WorkerFixture.make()
        defer { fixture.close() }
        try await fixture.fake.setDelay("flux", milliseconds: 100)
        #expect(try await fixture.inspector.concurrency(model: "flux") == 1)
        let prompts = (1...8).map { "fifo job \($0)" }
        var ids: [String] = []
        for prompt in prompts { ids.append(try await fixture.enqueue(prompt, model: "flux", enhance: false)) }

        let infos = try await fixture.withWorkers(["w1", "w2"], models: ["flux"]) { _ in
            var infos: [JobInfo] = []
            for id in ids { infos.append(try await fixture.waitForEnd(id)) }
            return infos
        }
        #expect(infos.allSatisfy { $0.status == .completed })

        let requests = try await fixture.requests("flux")
        #expect(requests.map(\.prompt) == prompts)
        for (earlier, later) in zip(requests, requests.dropFirst()) {
            let end = try #require(earlier.endMilliseconds)
            #expect(end <= later.timeMilliseconds,
                    "'\(later.prompt ?? "")' arrived at \(later.timeMilliseconds), before '\(earlier.prompt ?? "")' ended at \(end)")
        }
        // Redis agrees: each job started after the one before it had finished.
        for (earlier, later) in zip(infos, infos.dropFirst()) {
            let finished = try #require(earlier.finishedAt)
            let started = try #require(later.startedAt)
            #expect(finished <= started)
        }
        #expect(Set(infos.compactMap(\.worker)).isSubset(of: ["w1", "w2"]))
    }
}
