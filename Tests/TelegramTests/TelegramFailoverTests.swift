import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Exactly one delivery per job, whatever happens to the fronts.
@Suite("telegram front: restarts and several fronts", .serialized)
struct TelegramFailoverTests {
    @Test("a front SIGKILLed mid-job: its successor finishes the same status message and sends the photo once")
    func killedMidJob() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let doomed = try h.startFront("\(h.cli.prefix)-doomed")
        let command = try await h.telegram.sendUpdate(text: "/image=flux/a comet over the sea")
        try await h.waitForMessages("the status message") { $0.contains { $0.replyTo == command.messageID } }
        // Killed once the update is committed (a kill between Telegram accepting the status
        // message and that commit would repeat the status message: docs/TELEGRAM.md) and
        // the job runs.
        try await h.telegram.waitFor("the delivery recorded") { [h] in try await h.pendingDeliveries() == 1 }
        let jobID = try await h.cli.runRedis(["HKEYS", "\(h.cli.prefix):telegram:{123456}:deliveries"])
        let worker = try h.startWorker(delay: 4)
        let running = try await h.cli.waitForStatus(jobID, "generating")
        try #require(running["status"]?.string == "generating", "\(running)")
        doomed.send(SIGKILL)
        #expect(try await doomed.waitForExit() == .signalled(SIGKILL))
        try #require(try await h.pendingDeliveries() == 1, "the doomed front had not delivered yet")

        let successor = try h.startFront("\(h.cli.prefix)-successor")
        try await h.waitForPhotos(1)
        try await h.waitForMessages("the status message finished") { $0.contains { $0.text?.hasPrefix("✅ Done") == true } }
        try await Task.sleep(for: .seconds(2))  // room for a duplicate to show up
        await h.stop(successor, worker)

        let messages = try await h.messages()
        #expect(messages.filter(\.isPhoto).count == 1, "exactly one photo: \(messages)")
        #expect(messages.count == 2, "one status message, edited by both fronts, and the photo: \(messages)")
        #expect(messages.allSatisfy { $0.replyTo == command.messageID })
        #expect(successor.output.contains("resuming pending deliveries"), "\(successor.output)")
        let sends = try await h.telegram.calls("sendMessage")
        #expect(sends.count == 1, "the update was not handled twice: \(sends.count) sendMessage calls")
        #expect(try await h.pendingDeliveries() == 0)
    }

    @Test("a front restarted while its job waits in the queue: the update is not repeated and the job is delivered once")
    func restartedWhileQueued() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let first = try h.startFront("\(h.cli.prefix)-first")
        let commands = try await h.telegram.sendUpdates(["/image=flux/queued one", "/image=sdxl/queued two"])
        try await h.waitForMessages("both queued") { $0.filter { $0.text?.hasPrefix("⏳ Queued") == true }.count == 2 }
        await h.stop(first)  // SIGTERM: hands the lease over, leaves the deliveries in Redis
        #expect(first.termination == .exited(0), "\(first.output)")
        #expect(try await h.pendingDeliveries() == 2)

        let second = try h.startFront("\(h.cli.prefix)-second")
        let worker = try h.startWorker()
        try await h.waitForPhotos(2)
        try await h.waitForMessages("both finished") { $0.filter { $0.text?.hasPrefix("✅ Done") == true }.count == 2 }
        try await Task.sleep(for: .seconds(1))
        await h.stop(second, worker)

        let messages = try await h.messages()
        #expect(messages.count == 4, "two status messages and two photos, nothing repeated: \(messages)")
        for command in commands {
            #expect(messages.filter { $0.replyTo == command.messageID && $0.isPhoto }.count == 1)
        }
        let queues = try await h.cli.json(["queues", "--json"])
        #expect(queues["flux"]?["completed_total"]?.integer == 1 && queues["sdxl"]?["completed_total"]?.integer == 1,
                "each command queued one job: \(queues)")
    }

    @Test("two fronts at once: one polls, no reply is duplicated, and the other takes over at once on SIGTERM")
    func twoFronts() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let worker = try h.startWorker()
        let a = try h.startFront("\(h.cli.prefix)-a")
        let b = try h.startFront("\(h.cli.prefix)-b")
        try await h.telegram.waitUntilPolling()
        let firstRound = try await h.telegram.sendUpdates(["/image=flux/one", "/image=sdxl/two", "/image", "/image=flux/three"])
        try await h.waitForPhotos(3)
        try await h.waitForMessages("three finished") { $0.filter { $0.text?.hasPrefix("✅ Done") == true }.count == 3 }

        let leader = a.output.contains("took the poller lease") ? a : b
        let standby = leader === a ? b : a
        #expect(!standby.output.contains("took the poller lease"), "one poller at a time:\n\(a.output)\n\(b.output)")
        let handoverStart = ContinuousClock.now
        await h.stop(leader)
        #expect(await standby.waitForOutput(containing: "took the poller lease", timeout: 10), "\(standby.output)")
        let handover = ContinuousClock.now - handoverStart
        let last = try await h.telegram.sendUpdate(text: "/image=flux/after the handover")
        try await h.waitForPhotos(4)
        try await Task.sleep(for: .seconds(1))
        await h.stop(standby, worker)

        let messages = try await h.messages()
        for command in firstRound + [last] {
            let replies = messages.filter { $0.replyTo == command.messageID }
            #expect(replies.count == (command == firstRound[2] ? 1 : 2), "\(command): \(replies)")
        }
        #expect(messages.count == 9, "\(messages)")
        #expect(handover < .seconds(3), "a graceful stop hands the lease over before it expires: \(handover)")
        let conflicts = try await h.telegram.calls("getUpdates").filter { ($0["status"] as? NSNumber)?.intValue == 409 }
        #expect(conflicts.isEmpty, "never two long polls at once: \(conflicts.count) conflicts")
    }

    @Test("a Redis restart: the front keeps running, takes the lease again and serves the next command")
    func survivesRedisRestart() async throws {
        let server = try await RedisServer.launch()
        let h = try await TelegramHarness.start(redisURL: server.url)
        defer { h.cli.removeOutputDirectory() }
        let worker = try h.startWorker()
        let front = try h.startFront("\(h.cli.prefix)-front")
        try await h.telegram.sendUpdate(text: "/image=flux/before the restart")
        try await h.waitForPhotos(1)

        try await server.restart()  // no persistence: the lease, offset and queue are gone
        try await h.telegram.sendUpdate(text: "/image=flux/after the restart")
        let messages = try await h.waitForPhotos(2, timeout: .seconds(60))
        #expect(front.isRunning, "\(front.output)")
        await h.stop(front, worker)
        #expect(front.termination == .exited(0), "\(front.output)")
        #expect(messages.filter(\.isPhoto).map(\.caption).allSatisfy { $0?.contains("the restart") == true })
        #expect(messages.filter(\.isPhoto).count == 2, "\(messages)")
        withExtendedLifetime(server) {}
    }
}
