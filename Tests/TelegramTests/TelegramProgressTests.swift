import Foundation
import Testing
import TestSupport

/// Live progress in the status message: a worker rendering on the A1111 fake publishes
/// `generating` events with `progress` every 500 ms; the front shows the percentage.
@Suite("telegram front: live progress", .serialized)
struct TelegramProgressTests {
    @Test("progress events edit the status message to 'Generating… N %', no faster than --edit-interval, the newest text last")
    func progressEditsKeepThePace() async throws {
        let h = try await TelegramHarness.start()
        defer { h.cli.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        // Six seconds of render: about twelve progress events, at most every 500 ms.
        try await fake.setRender(service: "a1111", renderMs: 6_000, steps: 60)
        let models = FileManager.default.temporaryDirectory.appendingPathComponent("iq-tg-models-\(h.cli.prefix).json")
        try #"{"flux": {"backend": "a1111", "url": "\#(fake.a1111URL)"}}"#.write(to: models, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: models) }
        let environment = ["IMAGEQUEUE_MODELS_FILE": models.path]
        let worker = try h.cli.startWorker(["--models", "flux", "--output-dir", try h.cli.outputDirectory(),
                                            "--id", "\(h.cli.prefix)-gpu"], environment: environment)
        // An edit interval of 1 s, twice the progress events' pace: most of them are never shown.
        let front = try h.startFront("\(h.cli.prefix)-front", arguments: ["--edit-interval", "1", "--no-enhance"],
                                     environment: environment)
        let command = try await h.telegram.sendUpdate(text: "/image=flux/a slow aurora")
        try await h.waitForPhotos(1)
        try await h.waitForMessages("the status message finished") { $0.contains { $0.text?.hasPrefix("✅ Done") == true } }
        await h.stop(front, worker)

        let status = try #require(try await h.messages().first { !$0.isPhoto && $0.replyTo == command.messageID })
        let prefix = "🎨 Generating with flux… "
        let percents = status.history.compactMap { text -> Int? in
            guard text.hasPrefix(prefix), text.hasSuffix(" %") else { return nil }
            return Int(text.dropFirst(prefix.count).dropLast(2))
        }
        #expect(percents.count >= 2, "the percentage was shown as the render went: \(status.history)")
        #expect(percents == percents.sorted() && percents.allSatisfy { (0...100).contains($0) },
                "never an older percentage after a newer one: \(status.history)")
        #expect(status.history.last?.hasPrefix("✅ Done") == true, "\(status.history)")

        let edits = try await h.telegram.calls("editMessageText").compactMap { ($0["time_ms"] as? NSNumber)?.int64Value }.sorted()
        let gaps = zip(edits.dropFirst(), edits).map { $0 - $1 }
        #expect(gaps.allSatisfy { $0 >= 950 }, "edits of one status message at least --edit-interval (1 s) apart: \(gaps)")
        #expect((try await h.telegram.state()["flood_refusals"] as? NSNumber)?.intValue == 0)
    }
}
