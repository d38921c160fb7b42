import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `GET /v1/queues`, `/v1/workers` and `/v1/dashboard`.
@Suite("serve: queues, workers, dashboard")
struct OverviewTests {
    static let queueKeys: Set<String> = ["pending", "active", "dead", "concurrency", "completed_total", "failed_total",
                                         "oldest_pending_age_ms", "paused", "run_ms_avg"]

    @Test("/v1/queues: one entry per configured model with every count; oldest_pending_age_ms null when empty")
    func queues() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let empty = try await server.get("/v1/queues", auth: .none)
        #expect(empty.status == 200, "\(empty)")
        #expect(empty.mediaType == "application/json", "\(empty)")
        let stats = try empty.json()
        #expect(Set(stats.object?.keys.map { $0 } ?? []) == ["flux", "sdxl"], "\(empty)")
        for model in ["flux", "sdxl"] {
            let entry = stats[model]
            #expect(Set(entry?.object?.keys.map { $0 } ?? []) == Self.queueKeys, "\(model): \(empty)")
            for key in ["pending", "active", "dead", "completed_total", "failed_total"] {
                #expect(entry?[key] == .integer(0), "\(model).\(key): \(empty)")
            }
            #expect(entry?["concurrency"] == .integer(1), "\(model): \(empty)")
            #expect(entry?["oldest_pending_age_ms"] == .null, "\(model): \(empty)")
        }

        _ = try await server.enqueue("a wren", model: "sdxl")
        _ = try await server.enqueue("a robin", model: "sdxl")
        let busy = try await server.json("/v1/queues")
        #expect(busy["sdxl"]?["pending"] == .integer(2), "\(busy)")
        let age = busy["sdxl"]?["oldest_pending_age_ms"]?.integer
        #expect(age.map { $0 >= 0 && $0 < 600_000 } == true, "\(busy)")
        #expect(busy["flux"]?["oldest_pending_age_ms"] == .null, "\(busy)")

        // IMAGEQUEUE_MODELS decides the models.
        let other = try await fixture.startServer(environment: ["IMAGEQUEUE_MODELS": "flux,tiny"])
        let configured = try await other.json("/v1/queues")
        #expect(Set(configured.object?.keys.map { $0 } ?? []) == ["flux", "tiny"], "\(configured)")
    }

    @Test("/v1/workers lists a live placeholder worker with its id, pid, models and current jobs")
    func workers() async throws {
        let fixture = try ServeFixture()
        defer { fixture.removeOutputDirectory() }
        let server = try await fixture.startServer()
        #expect(try await server.json("/v1/workers", auth: .none) == .array([]))

        // Lease 3 s: the entry is refreshed every second.
        let worker = try fixture.startWorker(models: ["flux"], delaySeconds: 4, arguments: ["--lease-seconds", "3"])
        let workerID = "\(fixture.prefix)-w1"
        var entry: ParsedJSON?
        _ = try await eventually {
            entry = try await server.json("/v1/workers").array?.first { $0["id"]?.string == workerID }
            return entry != nil
        }
        let registered = try #require(entry, "worker never listed; worker output:\n\(worker.output)")
        #expect(Set(registered.object?.keys.map { $0 } ?? []) ==
                ["id", "host", "pid", "models", "started_at", "heartbeat_at", "current_jobs"], "\(registered)")
        #expect(registered["pid"] == .integer(Int64(worker.pid)), "\(registered)")
        #expect(registered["models"] == .array([.string("flux")]), "\(registered)")
        #expect(registered["host"]?.string?.isEmpty == false, "\(registered)")
        let started = registered["started_at"]?.integer ?? 0
        let heartbeat = registered["heartbeat_at"]?.integer ?? 0
        #expect(started > 0 && heartbeat >= started, "\(registered)")

        // While it runs a job, the job is among its current jobs.
        let id = try await server.enqueue("a moth", enhance: false)
        var busy: ParsedJSON?
        let listed = try await eventually {
            busy = try await server.json("/v1/workers").array?.first { $0["id"]?.string == workerID }
            return busy?["current_jobs"]?.array?.contains(.string(id)) == true
        }
        #expect(listed, "the running job never appeared in current_jobs: \(busy.map(\.description) ?? "no entry")")

        // A stopped worker deregisters.
        worker.send(SIGTERM)
        _ = try await worker.waitForExit()
        var remaining = ParsedJSON.null
        let gone = try await eventually(within: .seconds(15), every: .milliseconds(100)) {
            remaining = try await server.json("/v1/workers")
            return remaining == .array([])
        }
        #expect(gone, "still listed after SIGTERM: \(remaining)")
    }

    @Test("/v1/dashboard: recent holds the 24 newest completions, newest first")
    func dashboardRecentIsCapped() async throws {
        let fixture = try ServeFixture()
        defer { fixture.removeOutputDirectory() }
        let server = try await fixture.startServer()
        // 20 ms per image keeps completions in distinct milliseconds (one at a time: concurrency 1).
        let worker = try fixture.startWorker(models: ["flux"], delaySeconds: 0.02)
        var ids: [String] = []
        for number in 1...26 { ids.append(try await server.enqueue("job \(number)", enhance: false)) }
        let done = try await eventually(within: .seconds(60), every: .milliseconds(100)) {
            try await server.json("/v1/queues")["flux"]?["completed_total"] == .integer(26)
        }
        try #require(done, "26 jobs did not complete; worker output:\n\(worker.output)")
        let recent = try await server.json("/v1/dashboard")["recent"]?.array ?? []
        #expect(recent.compactMap { $0["id"]?.string } == Array(ids.reversed().prefix(24)),
                "recent: \(recent.compactMap { $0["id"]?.string })")
        worker.send(SIGTERM)
        _ = try await worker.waitForExit()
    }

    @Test("/v1/dashboard: queues, workers, running jobs, recent completions newest first, failed, generated_at")
    func dashboard() async throws {
        let fixture = try ServeFixture()
        defer { fixture.removeOutputDirectory() }
        let server = try await fixture.startServer()
        let worker = try fixture.startWorker(models: ["flux"], delaySeconds: 10)
        let first = try await server.enqueue("first", enhance: false)
        try #require(try await server.waitForJob(first, status: "completed")["status"] == .string("completed"),
                     "worker output:\n\(worker.output)")
        let second = try await server.enqueue("second", enhance: false)
        let secondDone = try await server.waitForJob(second, status: "completed")
        try #require(secondDone["status"] == .string("completed"))
        let third = try await server.enqueue("third", enhance: false)
        let running = try await server.waitForJob(third, status: "generating")
        try #require(running["status"] == .string("generating"), "\(running)")
        // Held where it is, however slow the machine: the third stays running and the fourth
        // queued while the dashboard is read (the lease outlasts the pause).
        worker.send(SIGSTOP)
        let queued = try await server.enqueue("fourth, waiting", enhance: false)

        let reply = try await server.get("/v1/dashboard", auth: .none)
        #expect(reply.status == 200, "\(reply)")
        #expect(reply.mediaType == "application/json", "\(reply)")
        let dashboard = try reply.json()
        #expect(Set(dashboard.object?.keys.map { $0 } ?? []) == ["queues", "workers", "running", "recent", "failed", "generated_at"],
                "\(reply)")
        // queues: the same shape as /v1/queues.
        #expect(Set(dashboard["queues"]?.object?.keys.map { $0 } ?? []) == ["flux", "sdxl"], "\(dashboard)")
        #expect(Set(dashboard["queues"]?["flux"]?.object?.keys.map { $0 } ?? []) == Self.queueKeys, "\(dashboard)")
        #expect(dashboard["queues"]?["flux"]?["completed_total"] == .integer(2), "\(dashboard)")
        #expect(dashboard["queues"]?["flux"]?["pending"] == .integer(1), "\(dashboard)")
        // workers: as /v1/workers.
        #expect(dashboard["workers"]?.array?.contains { $0["id"]?.string == "\(fixture.prefix)-w1" } == true, "\(dashboard)")
        // running: status objects of running jobs.
        let runningJobs = dashboard["running"]?.array ?? []
        #expect(runningJobs.compactMap { $0["id"]?.string } == [third], "running: \(runningJobs)")
        #expect(runningJobs.first?["status"] == .string("generating"))
        #expect(Set(runningJobs.first?.object?.keys.map { $0 } ?? []) == EnqueueTests.statusKeys)
        // recent: completed, newest first.
        let recent = dashboard["recent"]?.array ?? []
        #expect(recent.compactMap { $0["id"]?.string } == [second, first], "recent: \(recent)")
        #expect(recent.allSatisfy { $0["status"] == .string("completed") && Set($0.object?.keys.map { $0 } ?? []) == EnqueueTests.statusKeys })
        #expect(!recent.contains { $0["id"]?.string == queued })
        #expect(dashboard["failed"] == .array([]), "\(dashboard)")
        let generated = dashboard["generated_at"]?.integer ?? 0
        #expect(generated >= (secondDone["finished_at"]?.integer ?? .max), "generated_at \(generated) precedes a completion")

        worker.send(SIGCONT)
        worker.send(SIGTERM)
        _ = try await worker.waitForExit()
    }
}
