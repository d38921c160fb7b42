import Foundation
import Testing
import TestSupport

/// `imagequeue demo`, the README's first command.
@Suite("imagequeue demo")
struct DemoCommandTests {
    private func outputDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("iq-demo-\(UUID().uuidString.prefix(8))").path
    }

    private func imagePath(in stdout: String) -> String? {
        stdout.split(separator: "\n").first { $0.hasPrefix("image ") }
            .map { $0.dropFirst("image".count).trimmingCharacters(in: .whitespaces) }
            .map { $0.replacingOccurrences(of: "  (placeholder)", with: "") }
    }

    @Test("with a Redis that answers: every stage is shown and a real PNG is written")
    func endToEndOnTheGivenRedis() async throws {
        let cli = try CLI()
        let directory = outputDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try await cli.run(["demo", "--output-dir", directory, "a lighthouse at dawn"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        for stage in ["queued    position 1", "enhancing", "generating prompt: a lighthouse at dawn", "completed"] {
            #expect(lines.contains { $0.hasPrefix(stage) }, "no '\(stage)' line in:\n\(result.stdout)")
        }
        // The prompt is shown once; the placeholder's progress reports follow as percentages.
        #expect(lines.filter { $0.hasPrefix("generating prompt:") }.count == 1, "\(result.stdout)")
        #expect(lines.contains { $0.wholeMatch(of: /generating \d+ %/) != nil }, "\(result.stdout)")
        let path = try #require(imagePath(in: result.stdout), "\(result.stdout)")
        #expect(path.hasPrefix(directory + "/flux/") && path.hasSuffix(".png"))
        let bytes = try #require(FileManager.default.contents(atPath: path), "no file at \(path)")
        #expect(bytes.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
        // The job really went through the queue.
        let id = try #require(lines.first { $0.hasPrefix("job ") }?.split(separator: " ").last.map(String.init))
        #expect(try await cli.json(["status", id, "--json"])["status"] == .string("completed"))
    }

    @Test("--n 2: one image line per image, two different files")
    func twoImages() async throws {
        let cli = try CLI()
        let directory = outputDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try await cli.run(["demo", "--output-dir", directory, "--no-enhance", "--n", "2", "two lanterns"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let paths = result.stdout.split(separator: "\n").filter { $0.hasPrefix("image ") }
            .map { $0.dropFirst("image".count).trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "  (placeholder)", with: "") }
        #expect(paths.count == 2, "\(result.stdout)")
        let files = paths.compactMap { FileManager.default.contents(atPath: $0) }
        #expect(files.count == 2 && files[0] != files[1], "\(paths)")
        #expect(result.stdout.contains("completed 2 images"), "\(result.stdout)")
    }

    @Test("with no Redis configured and none on the default port: a throwaway redis-server, removed after")
    func throwawayRedis() async throws {
        let cli = try CLI()
        let directory = outputDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // No --redis and no IMAGEQUEUE_REDIS_URL; a prefix of its own in case a Redis does run on 6379.
        let result = try await cli.runExactly(["demo", "--output-dir", directory, "--model", "sdxl", "--no-enhance", "a red fox"],
                                              environment: ["IMAGEQUEUE_PREFIX": cli.prefix])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let path = try #require(imagePath(in: result.stdout), "\(result.stdout)")
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(!result.stdout.contains("enhancing"), "a --no-enhance job was enhanced:\n\(result.stdout)")
        if let line = result.stdout.split(separator: "\n").first(where: { $0.contains("started a throwaway redis-server") }),
           let url = line.split(separator: " ").first(where: { $0.hasPrefix("redis://") }) {
            // The server it started is gone again.
            let port = Int(url.split(separator: ":").last ?? "") ?? 0
            #expect(!RedisServer.canConnectForTests(port: port), "the throwaway redis-server on \(port) is still running")
        }
    }

    @Test("an explicitly configured Redis that does not answer: exit 1 with one line")
    func explicitRedisDown() async throws {
        let cli = try CLI()
        let result = try await cli.runExactly(["demo", "--redis", "redis://127.0.0.1:\(try RedisServer.freePort())", "a fox"])
        #expect(result.status == 1)
        #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains("does not answer"), "\(result.stderr)")
    }
}
