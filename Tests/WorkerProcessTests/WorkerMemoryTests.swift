import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The memory a worker process holds while a backend answers with far too much.
@Suite("worker: memory under an oversized answer")
struct WorkerMemoryTests {
    @Test("a 50 MiB answer over the 20 MiB limit fails image_too_large without the worker's peak RSS growing by the body")
    func anOversizedBodyIsNotHeldInMemory() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        try await fake.script("flux", [["size_bytes": 50 * 1024 * 1024]])
        let worker = try cli.startWorker(["--models", "flux", "--backend", "http", "--output-dir", try cli.outputDirectory(),
                                          "--id", "\(cli.prefix)-w"],
                                         environment: fake.environment().merging(["IMAGEQUEUE_GENERATION_ATTEMPTS": "1"]) { $1 })
        defer { worker.send(SIGKILL) }
        // Measured in the worker process alone (the test process runs other suites at once).
        // Its own peak so far, once it is up and idle, is the baseline.
        #expect(await worker.waitForOutput(containing: "serving"), "\(worker.output)")
        let before = try Self.kilobytes("VmHWM", of: worker.pid)
        let id = try await cli.enqueue("an enormous mural", enhance: false)
        let info = try await cli.waitForStatus(id, timeout: 60) { ["failed", "completed"].contains($0["status"]?.string ?? "") }
        let peak = try Self.kilobytes("VmHWM", of: worker.pid)

        #expect(info["status"]?.string == "failed", "\(info)\n\(worker.output)")
        #expect(info["error"]?["code"]?.string == "image_too_large", "\(info)")
        #expect(info["error"]?["message"]?.string == "The generated image is larger than the allowed size.")
        #expect(peak - before < 20 * 1024, "the worker's peak RSS rose by \((peak - before) / 1024) MiB")
        worker.send(SIGTERM)
        #expect(try await worker.waitForExit() == .exited(0), "\(worker.output)")
    }

    static func kilobytes(_ field: String, of pid: pid_t) throws -> Int {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            if let value = Int(line.dropFirst(field.count + 1).filter(\.isNumber)) { return value }
        }
        throw TestSetupError("no \(field) in /proc/\(pid)/status")
    }
}
