import Foundation
import Testing
import TestSupport

/// `IMAGEQUEUE_MODELS_FILE` in the release binaries: `imagequeue models`, the producers'
/// model list, and a worker that refuses to start on a bad file.
@Suite("models file")
struct ModelsFileTests {
    static let secret = "cf-token-must-never-print-8d1f"

    /// Writes `json` to a fresh file and returns its path.
    static func modelsFile(_ json: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("iq-models-\(UUID().uuidString).json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    static let table = """
        { "flux_dev": { "backend": "workers-ai", "url": "https://api.cloudflare.com/client/v4/accounts/ACC/ai/run/@cf/black-forest-labs/flux-1-schnell",
                        "api_key_env": "CF_API_TOKEN", "params": { "steps": 4 }, "timeout_s": 120 },
          "sd15": { "backend": "a1111", "urls": ["http://127.0.0.1:9/", "http://127.0.0.1:10/"], "params": { "steps": 25 } } }
        """

    @Test("imagequeue models --json prints the resolved table, the key's variable but never the key")
    func modelsCommand() async throws {
        let cli = try QueueCLI()
        let file = try Self.modelsFile(Self.table)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try await cli.runExactly(["models", "--json"], environment: ["IMAGEQUEUE_MODELS_FILE": file, "CF_API_TOKEN": Self.secret])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try ParsedJSON.parse(result.stdout)
        let models = try #require(json["models"]?.array)
        #expect(models.compactMap { $0["name"]?.string } == ["flux_dev", "sd15"])
        #expect(models[0]["backend"]?.string == "workers-ai" && models[0]["api_key_env"]?.string == "CF_API_TOKEN")
        #expect(models[0]["api_key_set"] == .bool(true))
        #expect(models[1]["urls"]?.array?.count == 2)
        let text = try await cli.runExactly(["models"], environment: ["IMAGEQUEUE_MODELS_FILE": file, "CF_API_TOKEN": Self.secret])
        #expect(text.status == 0 && text.stdout.contains("sd15  a1111") && text.stdout.contains("key CF_API_TOKEN (set)"), "\(text.stdout)")
        for output in [result.stdout, result.stderr, text.stdout, text.stderr] { #expect(!output.contains(Self.secret)) }
    }

    @Test("producers take their models from the file: a model it names is queued, one it does not is refused")
    func producersUseTheFile() async throws {
        let cli = try QueueCLI()
        let file = try Self.modelsFile(Self.table)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let environment = ["IMAGEQUEUE_MODELS_FILE": file]
        let queued = try await cli.run(["enqueue", "--json", "--model", "sd15", "--user", "alice", "a lighthouse"], environment: environment)
        #expect(queued.status == 0, "\(queued.stderr)")
        let refused = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "a lighthouse"], environment: environment)
        #expect(refused.status != 0 && refused.stderr.contains("flux_dev, sd15"), "\(refused.stderr)")
    }

    @Test("a bad models file stops the worker and the CLI at start with exit 2 and one line naming the model and the key")
    func badFiles() async throws {
        let cli = try QueueCLI()
        let cases: [(json: String, expected: String, environment: [String: String])] = [
            (#"{"flux": {"backend": "dall-e", "url": "http://127.0.0.1:9"}}"#, "model 'flux', key 'backend'", [:]),
            (#"{"flux": {"backend": "a1111", "url": "http://127.0.0.1:9""#, "is not a JSON object", [:]),
            (#"{"flux": {"backend": "workers-ai", "url": "http://127.0.0.1:9", "api_key_env": "IQ_TEST_UNSET_KEY"}}"#,
             "model 'flux', key 'api_key_env': names IQ_TEST_UNSET_KEY, which is not set", [:]),
        ]
        for entry in cases {
            let file = try Self.modelsFile(entry.json)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let environment = entry.environment.merging(["IMAGEQUEUE_MODELS_FILE": file]) { $1 }
            for worker in [try await cli.runStandaloneWorker(["--id", "\(cli.prefix)-bad"], environment: environment, timeout: 30),
                           try await cli.run(["worker", "--id", "\(cli.prefix)-bad"], environment: environment, timeout: 30)] {
                #expect(worker.status == 2, "\(entry.json): \(worker.stderr)")
                #expect(worker.stderr.contains(entry.expected), "\(worker.stderr)")
                #expect(worker.stderr.contains("IMAGEQUEUE_MODELS_FILE"), "\(worker.stderr)")
                #expect(worker.stderr.split(separator: "\n").count == 1, "one line: \(worker.stderr)")
            }
        }
        // A producer needs no key: the same missing variable is no error for `models`.
        let file = try Self.modelsFile(cases[2].json)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let models = try await cli.runExactly(["models"], environment: ["IMAGEQUEUE_MODELS_FILE": file])
        #expect(models.status == 0 && models.stdout.contains("key IQ_TEST_UNSET_KEY (not set)"), "\(models.stdout)\(models.stderr)")
    }
}
