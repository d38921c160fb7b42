import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// API keys reach the services they are for and nowhere else: not the worker's logs (even
/// at debug level, even when the services fail), not the job's status or events.
@Suite("worker secrets")
struct WorkerSecretsTests {
    static let sdxlKey = "sk-SECRET-sdxl-123"
    static let openRouterKey = "sk-SECRET-or-456"

    /// Where `secret` first occurs in `text`: the line's start (the logger's label and
    /// message) and the 120 characters before it, so a failure says who printed it.
    static func context(of secret: String, in text: String) -> String {
        guard let range = text.range(of: secret) else { return "" }
        let lineStart = text[..<range.lowerBound].lastIndex(of: "\n").map(text.index(after:)) ?? text.startIndex
        let before = text.index(range.lowerBound, offsetBy: -120, limitedBy: lineStart) ?? lineStart
        return "\(text[lineStart...].prefix(160))… …\(text[before..<range.upperBound])"
    }

    @Test("no API key appears in the worker's output, the job's status or its events")
    func secretsStayOut() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        try await fake.script("openrouter", [["status": 500]])
        try await fake.script("sdxl", [["status": 401]])
        var environment = fake.environment(sdxlKey: Self.sdxlKey, llm: "openrouter")
        environment["OPENROUTER_API_KEY"] = Self.openRouterKey
        environment["IMAGEQUEUE_LOG_LEVEL"] = "debug"

        let id = try await cli.enqueue("a vault full of keys", model: "sdxl")
        let watch = try cli.start(["watch", "--json", id, "--redis", cli.redisURL, "--prefix", cli.prefix])
        // The stored event first, so the watcher is subscribed before the worker starts.
        try #require(await watch.waitForOutput(containing: "\n"), "watch printed:\n\(watch.output)")
        let worker = try cli.startWorker(["--models", "sdxl", "--backend", "http",
                                          "--output-dir", cli.outputDirectory(), "--id", "\(cli.prefix)-w1"],
                                         environment: environment)
        let failed = try await cli.waitForStatus(id, "failed")
        try #require(failed["status"]?.string == "failed", "\(failed)\nworker output:\n\(worker.output)")
        let watchEnded = try await watch.waitForExit()
        #expect(watchEnded == .exited(1), "watch printed:\n\(watch.output)")
        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()
        #expect(ended == .exited(0), "worker output:\n\(worker.output)")

        // The keys were really in play: each service got its own.
        let sdxl = try await fake.requests("sdxl")
        let openRouter = try await fake.requests("openrouter")
        try #require(!sdxl.isEmpty && !openRouter.isEmpty)
        #expect(((sdxl[0]["headers"] as? [String: Any])?["authorization"] as? String)?.contains(Self.sdxlKey) == true)
        #expect(((openRouter[0]["headers"] as? [String: Any])?["authorization"] as? String)?.contains(Self.openRouterKey) == true)

        let status = try await cli.run(["status", "--json", id])
        let dead = try await cli.run(["dead", "list", "--json", "--model", "sdxl"])
        let texts = ["worker output": worker.output, "status --json": status.stdout + status.stderr,
                     "watch --json": watch.output, "dead list --json": dead.stdout + dead.stderr]
        for (source, text) in texts {
            #expect(!text.isEmpty, "\(source) printed nothing")
            for secret in [Self.sdxlKey, Self.openRouterKey, "SECRET"] {
                let shown = text.contains(secret)  // not inside #expect, which would print all of `text`
                #expect(!shown, "\(source) shows \(secret): \(Self.context(of: secret, in: text))")
            }
        }
    }
}
