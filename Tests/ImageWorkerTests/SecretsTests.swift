import ImageQueue
import Logging
import Synchronization
import Testing
import TestSupport

/// API keys go to the services that need them and nowhere else: not into events, the job
/// hash or error messages, even when a service echoes the key back in its error body.
@Suite(.timeLimit(.minutes(1)), .runsClients)
struct SecretsTests {
    @Test func keysNeverReachEventsTheJobHashOrErrors() async throws {
        let sdxlKey = "sk-sdxl-SECRET-1"
        let openRouterKey = "sk-or-SECRET-2"
        let fixture = try await WorkerFixture.make(environment: ["OPENROUTER_API_KEY": openRouterKey], sdxlKey: sdxlKey,
                                                   llm: "openrouter")
        defer { fixture.close() }
        let json = ["Content-Type": "application/json"]
        try await fixture.fake.script("openrouter", [["status": 401, "headers": json,
                                                      "body": #"{"error":"invalid key sk-or-SECRET-2"}"#]])
        try await fixture.fake.script("sdxl", [["status": 401, "headers": json,
                                                "body": #"{"error":"Bearer sk-sdxl-SECRET-1 is not valid"}"#]])
        let info = try await fixture.withWorkers { _ in
            try await fixture.waitForEnd(try await fixture.enqueue("a vault full of gold", model: "sdxl"))
        }
        #expect(info.status == .failed)
        #expect(info.error?.code == "backend_rejected")

        // The keys did go where they belong, so their absence below means something.
        #expect(try await fixture.requests("openrouter").first?.headers["authorization"] == "Bearer \(openRouterKey)")
        #expect(try await fixture.requests("sdxl").first?.headers["authorization"] == "Bearer \(sdxlKey)")

        let secrets = [sdxlKey, openRouterKey, "SECRET"]
        let published = fixture.events.published(for: info.id)
        #expect(published.count >= 3, "queued, generating, failed at least")
        let hash = try await fixture.jobHash(info.id)
        #expect(!hash.isEmpty)
        let dead = try await fixture.inspector.deadJobs(model: "sdxl")
        var texts: [(String, String)] = published.map { ("event", $0.json) }
        texts += hash.map { ("hash field \($0.key)", $0.value) }
        texts += [("status error", info.error?.message ?? ""), ("dead-list error", dead.first?.error?.message ?? "")]
        texts += fixture.events.events(of: info.id).compactMap { $0.error.map { ("event error", $0.message) } }
        for (place, text) in texts {
            for secret in secrets {
                #expect(!text.contains(secret), "\(place) holds a secret: \(text)")
            }
        }
    }

    @Test func keysNeverReachTheLogsEvenAtTraceLevel() async throws {
        let sdxlKey = "sk-sdxl-SECRET-1"
        let openRouterKey = "sk-or-SECRET-2"
        let fixture = try await WorkerFixture.make(environment: ["OPENROUTER_API_KEY": openRouterKey], sdxlKey: sdxlKey,
                                                   llm: "openrouter")
        defer { fixture.close() }
        try await fixture.fake.script("sdxl", [["status": 401]])
        let lines = CapturedLines()
        var logger = Logger(label: "imageworker.tests.captured") { label in CapturingLogHandler(label: label, lines: lines) }
        logger.logLevel = .trace
        let info = try await fixture.withWorkers(logger: logger) { _ in
            try await fixture.waitForEnd(try await fixture.enqueue("a vault full of gold", model: "sdxl"))
        }
        #expect(info.status == .failed)
        let logged = lines.all
        #expect(!logged.isEmpty)
        let leaking = logged.filter { $0.contains(sdxlKey) || $0.contains(openRouterKey) }
        let example = leaking.first.map { line -> String in
            guard let key = line.range(of: sdxlKey) ?? line.range(of: openRouterKey) else { return "" }
            let start = line.index(key.lowerBound, offsetBy: -120, limitedBy: line.startIndex) ?? line.startIndex
            return "…" + line[start..<key.upperBound]
        }
        let leakingCount = leaking.count
        #expect(leakingCount == 0, "\(leakingCount) of \(logged.count) log lines hold an API key, e.g. \(example ?? "")")
    }
}

/// Every log line, message and metadata, as text.
final class CapturedLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

struct CapturingLogHandler: LogHandler {
    let label: String
    let lines: CapturedLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        lines.append("\(event.level) \(event.message) \(merged)")
    }
}
