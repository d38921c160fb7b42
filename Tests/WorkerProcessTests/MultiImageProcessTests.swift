import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `imagequeue enqueue --n N` with an `imagequeue worker` process on the offline placeholder
/// backend: the job's images, each its own file, listed by `status`; a bad `--n` refused.
@Suite("several images per job, through the binaries")
struct MultiImageProcessTests {
    @Test("enqueue --n 3: the worker makes three distinct images, each a file of its own, listed by status")
    func threeImages() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let output = try cli.outputDirectory()
        let worker = try cli.startWorker(["--models", "flux", "--backend", "placeholder", "--output-dir", output,
                                          "--id", "\(cli.prefix)-w"])
        let enqueued = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "--n", "3", "three paper boats"])
        try #require(enqueued.status == 0, "\(enqueued.stderr)")
        let id = enqueued.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let done = try await cli.waitForStatus(id, "completed")
        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()
        #expect(ended == .exited(0), "worker output:\n\(worker.output)")
        try #require(done["status"]?.string == "completed", "\(done)\nworker output:\n\(worker.output)")

        #expect(done["n"]?.integer == 3)
        let images = try #require(done["result"]?["images"]?.array, "\(done)")
        let paths = images.compactMap { $0["path"]?.string }
        #expect(paths == ["\(output)/flux/\(id).png", "\(output)/flux/\(id)+1.png", "\(output)/flux/\(id)+2.png"], "\(paths)")
        #expect(done["result"]?["path"]?.string == paths.first)
        let files = paths.compactMap { FileManager.default.contents(atPath: $0) }
        #expect(files.count == 3 && Set(files).count == 3, "three distinct files")
        #expect(files.allSatisfy { $0.starts(with: [0x89, 0x50, 0x4E, 0x47]) })
        #expect(zip(images, files).allSatisfy { $0["bytes"]?.integer == Int64($1.count) })

        // The plain status lists every image, one line each.
        let text = try await cli.run(["status", id])
        let resultLines = text.stdout.split(separator: "\n").filter { $0.hasPrefix("result ") }
        #expect(resultLines.count == 3 && zip(resultLines, paths).allSatisfy { $0.hasSuffix($1) }, "\(text.stdout)")
    }

    @Test("--n outside 1 to 4, or not a number: one line, exit 2, nothing queued", arguments: ["0", "5", "x"])
    func badCount(_ n: String) async throws {
        let cli = try QueueCLI()
        let result = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "--n", n, "too many boats"])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains(n == "x" ? "'x' is invalid for '--n" : "must be 1 to 4, not \(n)"), "\(result.stderr)")
        #expect(try await cli.json(["queues", "--json"])["flux"]?["pending"]?.integer == 0)
    }
}
