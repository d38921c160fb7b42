import Foundation
import Testing
import TestSupport

/// `imagequeue watch` and a running job's progress events.
@Suite("imagequeue watch: progress")
struct WatchProgressTests {
    @Test("watch shows progress in whole percent rounded down (0.29 is 29 %); --json passes the event through as published")
    func percentagesAndJSON() async throws {
        let cli = try CLI()
        let id = try await cli.enqueue()
        let text = try cli.start(["watch", id])
        let json = try cli.start(["watch", id, "--json"])
        #expect(await text.waitForLines(1).count == 1)
        #expect(await json.waitForLines(1).count == 1)
        let worker = WorkerSteps(cli: cli)
        let claim = try await worker.claim()
        // A generating event without progress keeps its usual line.
        try await worker.progress(claim, stage: "generating", detail: #"{"enhanced_prompt":"an aurora, slowly"}"#)
        for (count, detail) in [(4, #"{"progress":0}"#), (5, #"{"progress":0.29}"#), (6, #"{"progress":0.999,"preview":true}"#),
                                (7, #"{"progress":1}"#)] {
            try await worker.progress(claim, stage: "generating", detail: detail)
            #expect(await text.waitForLines(count).count == count)
            #expect(await json.waitForLines(count).count == count)
        }
        let lines = text.lines
        #expect(lines.count == 7, "\(lines)")
        #expect(lines.count > 2 && lines[2].hasSuffix("generating  attempt 1  prompt: an aurora, slowly"), "\(lines)")
        let expected = ["generating 0 %", "generating 29 %", "generating 99 %  (preview)", "generating 100 %"]
        for (line, suffix) in zip(lines.dropFirst(3), expected) {
            #expect(line.hasSuffix("  " + suffix), "\(line) ends with \(suffix)")
        }

        // --json: each event as published, the progress members as the script wrote them.
        let events = try json.lines.map { try ParsedJSON.parse($0) }
        #expect(events.count == 7)
        if events.count == 7 {
            #expect(events[4]["progress"] == .number(0.29), "\(json.lines[4])")
            #expect(events[5]["progress"] == .number(0.999) && events[5]["preview"] == .bool(true), "\(json.lines[5])")
            #expect(events[5]["status"]?.string == "generating")
            #expect(!json.lines.contains { $0.contains("%") }, "no formatting in --json: \(json.lines)")
        }
        try await worker.complete(claim)
        #expect(try await text.waitForExit().status == 0)
        #expect(try await json.waitForExit().status == 0)
    }

    @Test("watch shows a queued job's expected wait, from the ETA of its queued event")
    func expectedWait() async throws {
        let cli = try CLI()
        // A run-time history of 40 s per job, as completeJob keeps it.
        let history = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"),
                                           ["redis-cli", "-u", cli.redisURL, "HSET", "\(cli.prefix):{flux}:meta", "run_ms_avg", "40000"])
        try #require(history.status == 0, "\(history.stderr)")
        let running = try await cli.enqueue("a running fox")
        let worker = WorkerSteps(cli: cli)
        let claim = try await worker.claim()
        #expect(claim.id == running)
        let waiting = try await cli.enqueue("a waiting fox")
        let text = try cli.start(["watch", waiting])
        let lines = await text.waitForLines(1)
        // Next in line behind a job that is half done on average: about 20 s.
        #expect(lines.first?.hasSuffix("queued  position 1, starts in about 20 s") == true, "\(lines)")
        try await worker.complete(claim)  // `text` is stopped when it goes (BackgroundProgram's deinit)
    }
}
