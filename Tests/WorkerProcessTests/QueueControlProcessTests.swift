import Foundation
import Testing
import TestSupport

/// Pause and resume, priorities and the ETA through the release binaries: `imagequeue
/// pause/resume/enqueue --priority/status/queues` and a real worker on a fake backend.
@Suite("queue control", .serialized)
struct QueueControlProcessTests {
    @Test("a pause holds queued jobs from an idle worker; resume runs them all, in order, at once")
    func pauseAndResume() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let worker = try cli.startWorker(["--models", "flux", "--backend", "placeholder", "--output-dir", try cli.outputDirectory(),
                                          "--id", "\(cli.prefix)-w1"])
        defer { worker.send(SIGKILL) }
        // The worker is up and idle: its first job has completed.
        let warmUp = try await cli.enqueue("warm up", enhance: false)
        try #require(try await cli.waitForStatus(warmUp, "completed")["status"]?.string == "completed", "\(worker.output)")

        let paused = try await cli.run(["pause", "--model", "flux"])
        #expect(paused.status == 0 && paused.stdout.contains("flux: paused"), "\(paused.stderr)")
        let again = try await cli.run(["pause", "--model", "flux"])
        #expect(again.status == 0 && again.stdout.contains("already paused"), "\(again.stdout)")
        var ids: [String] = []
        for index in 0..<4 { ids.append(try await cli.enqueue("held \(index)", enhance: false)) }
        let queues = try await cli.json(["queues", "--json"])
        #expect(queues["flux"]?["paused"] == .bool(true) && queues["sdxl"]?["paused"] == .bool(false), "\(queues)")
        #expect(queues["flux"]?["pending"]?.integer == 4)
        // Nothing is claimed while paused (the window the tracker asks for: 3 s).
        let until = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < until {
            for id in ids { #expect(try await cli.status(id)["status"]?.string == "queued") }
            try await Task.sleep(for: .milliseconds(250))
        }
        let resumed = try await cli.run(["resume", "--model", "flux", "--json"])
        let answer = try ParsedJSON.parse(resumed.stdout)
        #expect(answer["paused"] == .bool(false) && answer["changed"] == .bool(true), "\(resumed.stdout)")
        var starts: [Int64] = []
        for id in ids {
            let done = try await cli.waitForStatus(id, "completed")
            #expect(done["status"]?.string == "completed", "\(done)\n\(worker.output)")
            starts.append(done["started_at"]?.integer ?? 0)
        }
        #expect(starts == starts.sorted(), "the held jobs ran in enqueue order: \(starts)")
        #expect(worker.isRunning)
    }

    @Test("high, high, normal, normal, low: positions count every job ahead, the worker starts them by level")
    func priorities() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        var ids: [String] = []
        for (index, level) in ["low", "normal", "high", "normal", "high"].enumerated() {
            let reply = try await cli.json(["enqueue", "--json", "--model", "flux", "--user", "alice", "--no-enhance",
                                            "--priority", level, "prompt \(index)"])
            ids.append(try #require(reply["id"]?.string))
        }
        var positions: [Int] = []
        for id in ids { positions.append(try await cli.status(id)["position"]?.integer.map { Int($0) } ?? 0) }
        #expect(positions == [5, 3, 1, 4, 2])
        let text = try await cli.run(["status", ids[2]])
        #expect(text.stdout.contains("queued (position 1") && text.stdout.contains("priority  high"), "\(text.stdout)")
        let refused = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "--priority", "urgent", "x"])
        #expect(refused.status == 2 && refused.stderr.contains("urgent"), "\(refused.stderr)")

        let worker = try cli.startWorker(["--models", "flux", "--backend", "placeholder", "--output-dir", try cli.outputDirectory(),
                                          "--id", "\(cli.prefix)-w1"])
        defer { worker.send(SIGKILL) }
        var started: [(id: String, at: Int64)] = []
        for id in ids {
            let done = try await cli.waitForStatus(id, "completed")
            #expect(done["status"]?.string == "completed", "\(done)\n\(worker.output)")
            started.append((id, done["started_at"]?.integer ?? 0))
        }
        let order = started.sorted { $0.at < $1.at }.map(\.id)
        #expect(order == [ids[2], ids[4], ids[1], ids[3], ids[0]])
    }

    @Test("on a steady load the ETA a queued job is given is within 50 % of its real wait")
    func etaOnASteadyLoad() async throws {
        let fake = try await FakeBackends.start()
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let runMs = 800
        try await fake.setDelay("flux", milliseconds: runMs)
        let worker = try cli.startWorker(["--models", "flux", "--backend", "http", "--output-dir", try cli.outputDirectory(),
                                          "--id", "\(cli.prefix)-w1"], environment: fake.environment())
        defer { worker.send(SIGKILL) }
        // A history first: three jobs one after another.
        for index in 0..<3 {
            let id = try await cli.enqueue("history \(index)", enhance: false)
            try #require(try await cli.waitForStatus(id, "completed")["status"]?.string == "completed", "\(worker.output)")
        }
        // Then a steady load: two jobs per run time, so the queue grows by one job per run.
        var jobs: [(id: String, eta: Int64, position: Int)] = []
        var tick = ContinuousClock.now
        for round in 0..<7 {
            for index in 0..<2 {
                let reply = try await cli.json(["enqueue", "--json", "--model", "flux", "--user", "alice", "--no-enhance",
                                                "steady \(round).\(index)"])
                let id = try #require(reply["id"]?.string)
                let status = try await cli.status(id)
                if let eta = status["eta_ms"]?.integer, let position = status["position"]?.integer {
                    jobs.append((id, eta, Int(position)))
                }
            }
            tick += .milliseconds(runMs)
            try await Task.sleep(until: tick, clock: .continuous)  // the load's pace, not a wait for a condition
        }
        var checked = 0
        for job in jobs {
            let done = try await cli.waitForStatus(job.id, "completed")
            let wait = (done["started_at"]?.integer ?? 0) - (done["enqueued_at"]?.integer ?? 0)
            // A job waits for the running job's rest (0 to a whole run; the estimate takes half)
            // plus a run per job ahead: at positions 1 and 2 the estimate is a mean, not within
            // 50 % of every single wait; from 3 on it is.
            guard job.position >= 3 else { continue }
            checked += 1
            let error = abs(Double(job.eta - wait)) / Double(max(wait, 1))
            #expect(error <= 0.5, "position \(job.position): estimated \(job.eta) ms, waited \(wait) ms")
        }
        #expect(checked >= 4, "the stream kept the queue deep enough to check: \(jobs)")
        withExtendedLifetime(fake) {}
    }
}
