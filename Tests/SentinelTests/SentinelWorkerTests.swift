import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The release binaries on a `redis+sentinel://` URL: a worker keeps completing jobs across a
/// failover, the CLI enqueues on whichever server is the master, and the sentinels' password
/// setting is checked.
@Suite("Sentinel: worker and CLI processes", .serialized)
struct SentinelWorkerTests {
    static let workerEnvironment = ["IMAGEQUEUE_RESULT_STORE": "redis"]

    /// Enqueues `prompt`, retrying while the command fails (during a switch it may), until
    /// `limit` passes.
    /// - Returns: the job id and the failed attempts' messages.
    static func enqueueRetrying(_ cli: QueueCLI, _ prompt: String, within limit: Duration = .seconds(90)) async throws -> (id: String?, failures: [String]) {
        let deadline = ContinuousClock.now + limit
        var failures: [String] = []
        while ContinuousClock.now < deadline {
            let result = try await cli.run(["enqueue", "--json", "--no-enhance", "--model", "flux", "--user", "alice", prompt])
            if result.status == 0, let id = try? ParsedJSON.parse(result.stdout)["id"]?.string { return (id, failures) }
            failures.append("exit \(result.status): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
            try await Task.sleep(for: .milliseconds(250))
        }
        return (nil, failures)
    }

    /// Polls `status --json` (tolerating failed polls) until the job is `completed` or `limit` passes.
    static func waitForCompletion(_ cli: QueueCLI, _ id: String, within limit: Duration = .seconds(90)) async throws -> String {
        let deadline = ContinuousClock.now + limit
        var last = "no answer"
        while ContinuousClock.now < deadline {
            let result = try await cli.run(["status", "--json", id])
            if result.status == 0, let status = try? ParsedJSON.parse(result.stdout)["status"]?.string {
                last = status
                if status == "completed" { return status }
            } else {
                last = "exit \(result.status): \(result.stderr)"
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return last
    }

    /// Runs jobs before and after the master moves (`move` does it and returns the old master's
    /// port), on one worker process that is never restarted.
    func jobsSurviveAMove(worker start: (QueueCLI, [String]) throws -> SpawnedProcess,
                          move: (LocalSentinel) async throws -> Int) async throws {
        let deployment = try await LocalSentinel.start()
        defer { withExtendedLifetime(deployment) {} }
        let cli = try QueueCLI(redisURL: deployment.url, label: "sn")
        defer { cli.removeOutputDirectory() }
        let worker = try start(cli, ["--models", "flux", "--backend", "placeholder", "--lease-seconds", "3",
                                     "--output-dir", try cli.outputDirectory(), "--id", "\(cli.prefix)-w"])
        defer { worker.send(SIGKILL) }

        var before: [String] = []
        for index in 0..<3 { before.append(try await cli.enqueue("before the failover \(index)", enhance: false)) }
        for id in before {
            let status = try await Self.waitForCompletion(cli, id)
            try #require(status == "completed", "\(id): \(status)\nworker output:\n\(worker.output)")
        }
        // Everything the master has is on the replica before it moves: only what happens
        // after the switch is at stake.
        try await deployment.waitUntilReplicated()

        let old = try await move(deployment)
        var after: [String] = []
        var enqueueFailures: [String] = []
        for index in 0..<3 {
            let (id, failures) = try await Self.enqueueRetrying(cli, "after the failover \(index)")
            enqueueFailures += failures
            let enqueued = try #require(id, "enqueue never succeeded: \(failures.suffix(3))\n\(deployment.logTail())")
            after.append(enqueued)
        }
        let new = try await deployment.waitForMaster(notOn: old)
        #expect(new == deployment.replicaPort)

        // The worker, never restarted, claims them from the new master.
        for id in after {
            let status = try await Self.waitForCompletion(cli, id)
            #expect(status == "completed", "\(id): \(status)\nworker output:\n\(worker.output)\nenqueue failures: \(enqueueFailures)")
        }
        for id in before {
            #expect(try await cli.status(id)["status"]?.string == "completed", "\(id) was lost in the switch")
        }
        // The jobs are on the new master itself, and nothing is left queued or running.
        for id in after {
            let reply = try await deployment.node(new, ["EXISTS", "\(cli.prefix):{flux}:job:\(id)"])
            #expect(reply == .integer(1), "\(id) is not on the new master (\(reply))")
        }
        let queues = try await cli.json(["queues", "--json"])
        #expect(queues["flux"]?["pending"]?.integer == 0, "\(queues)")
        #expect(queues["flux"]?["active"]?.integer == 0, "\(queues)")
        #expect(queues["flux"]?["dead"]?.integer == 0, "\(queues)")
        #expect((queues["flux"]?["completed_total"]?.integer ?? 0) >= Int64(before.count + after.count), "\(queues)")

        #expect(worker.isRunning, "the worker stopped:\n\(worker.output)")
        worker.send(SIGTERM)
        let ended = try await worker.waitForExit(timeout: 60)
        #expect(ended == .exited(0), "worker output:\n\(worker.output)")
        await deployment.stop()
    }

    @Test("imagequeue worker completes every job across a master crash")
    func workerAcrossAMasterCrash() async throws {
        try await jobsSurviveAMove(worker: { cli, arguments in
            try cli.startWorker(arguments, environment: Self.workerEnvironment)
        }, move: { deployment in
            try await deployment.killMaster()
        })
    }

    @Test("imagequeue-worker completes every job across a live failover")
    func standaloneWorkerAcrossALiveFailover() async throws {
        try await jobsSurviveAMove(worker: { cli, arguments in
            try cli.startStandaloneWorker(arguments, environment: Self.workerEnvironment)
        }, move: { deployment in
            let old = try await deployment.failover()
            try await deployment.waitForReplica(on: old)
            return old
        })
    }

    @Test("the CLI reaches sentinels with a password of their own through IMAGEQUEUE_SENTINEL_PASSWORD")
    func sentinelPasswordFromTheEnvironment() async throws {
        let sentinelPassword = "sp-\(UInt32.random(in: 1...UInt32.max))"
        let masterPassword = "mp-\(UInt32.random(in: 1...UInt32.max))"
        let deployment = try await LocalSentinel.start(masterPassword: masterPassword, sentinelPassword: sentinelPassword)
        defer { withExtendedLifetime(deployment) {} }
        let cli = try QueueCLI(redisURL: deployment.url, label: "sn")

        let enqueued = try await cli.run(["enqueue", "--json", "--no-enhance", "--model", "flux", "--user", "alice", "a fox"],
                                         environment: ["IMAGEQUEUE_SENTINEL_PASSWORD": sentinelPassword])
        #expect(enqueued.status == 0, "stderr: \(enqueued.stderr.replacingOccurrences(of: masterPassword, with: "<pw>"))")
        let id = try ParsedJSON.parse(enqueued.stdout)["id"]?.string ?? ""
        let stored = try await deployment.node(deployment.masterPort, ["EXISTS", "\(cli.prefix):{flux}:job:\(id)"])
        #expect(stored == .integer(1), "the job is not on the master")

        let without = try await cli.run(["queues", "--json"])
        #expect(without.status != 0, "the sentinels answered without their password")
        for result in [enqueued, without] {
            for secret in [sentinelPassword, masterPassword] {
                #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret), "a password was printed")
            }
        }
        await deployment.stop()
    }

    static let executables = ["imagequeue queues", "imagequeue worker", "imagequeue-worker"]

    @Test("IMAGEQUEUE_SENTINEL_PASSWORD beside a redis:// URL: exit 2 naming the variable", arguments: executables)
    func sentinelPasswordWithoutSentinels(_ executable: String) async throws {
        let cli = try QueueCLI()
        let secret = "spw-\(UInt32.random(in: 1...UInt32.max))"
        let environment = ["IMAGEQUEUE_SENTINEL_PASSWORD": secret, "IMAGEQUEUE_RESULT_STORE": "redis"]
        let worker = ["--models", "flux", "--backend", "placeholder", "--output-dir", try cli.outputDirectory()]
        defer { cli.removeOutputDirectory() }
        let result = switch executable {
        case "imagequeue queues": try await cli.run(["queues", "--json"], environment: environment, timeout: 30)
        case "imagequeue worker": try await cli.run(["worker"] + worker, environment: environment, timeout: 30)
        default: try await cli.runStandaloneWorker(worker, environment: environment, timeout: 30)
        }
        let lines = result.stderr.split(separator: "\n")
        #expect(result.status == 2, "stderr: \(result.stderr.replacingOccurrences(of: secret, with: "<pw>"))")
        #expect(lines.count == 1, "stderr: \(result.stderr.replacingOccurrences(of: secret, with: "<pw>"))")
        #expect(lines.first?.contains("IMAGEQUEUE_SENTINEL_PASSWORD") == true, "stderr: \(result.stderr.replacingOccurrences(of: secret, with: "<pw>"))")
        #expect(!result.stderr.contains(secret) && !result.stdout.contains(secret), "the password was printed")
        #expect(result.stdout.isEmpty)
    }
}
