import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Settings the worker cannot use stop it at start with exit status 2 and one line naming
/// the setting; a model whose backend is missing is skipped, with the reason, while the
/// others are served.
@Suite("worker configuration errors")
struct WorkerConfigurationTests {
    struct BadSetting: Sendable, CustomTestStringConvertible {
        let setting: String
        let arguments: [String]
        let environment: [String: String]
        var testDescription: String { setting }
    }

    static let badSettings: [BadSetting] = [
        BadSetting(setting: "FLUX_WORKER_URL", arguments: ["--backend", "http"],
                   environment: ["FLUX_WORKER_URL": "notaurl"]),
        BadSetting(setting: "OPENROUTER_API_KEY", arguments: ["--backend", "http"],
                   environment: ["FLUX_WORKER_URL": "http://127.0.0.1:9/flux", "LLM_PROVIDER": "openrouter"]),
        BadSetting(setting: "IMAGEQUEUE_GENERATION_TIMEOUT", arguments: ["--backend", "http"],
                   environment: ["FLUX_WORKER_URL": "http://127.0.0.1:9/flux", "IMAGEQUEUE_GENERATION_TIMEOUT": "-1"]),
        BadSetting(setting: "--backend", arguments: ["--backend", "wat"], environment: [:]),
        // Found in the fuzzing work (docs/FUZZING.md): these passed a one-sided check, then trapped.
        BadSetting(setting: "--lease-seconds", arguments: ["--backend", "placeholder", "--lease-seconds", "nan"], environment: [:]),
        BadSetting(setting: "--lease-seconds", arguments: ["--backend", "placeholder", "--lease-seconds", "1e300"], environment: [:]),
        BadSetting(setting: "--grace-seconds", arguments: ["--backend", "placeholder", "--grace-seconds", "inf"], environment: [:]),
        BadSetting(setting: "--concurrency", arguments: ["--backend", "placeholder", "--concurrency", "0"], environment: [:]),
        BadSetting(setting: "--metrics-port", arguments: ["--backend", "placeholder", "--metrics-port", "70000"], environment: [:]),
    ]

    /// `imagequeue worker` and the lean `imagequeue-worker` take the same options.
    static let executables = ["imagequeue worker", "imagequeue-worker"]

    @Test("a bad setting exits 2 with one line naming it", arguments: badSettings, executables)
    func badSettingExitsTwo(_ bad: BadSetting, executable: String) async throws {
        let cli = try QueueCLI()
        let arguments = ["--models", "flux", "--output-dir", try cli.outputDirectory()] + bad.arguments
        let result = executable == "imagequeue-worker"
            ? try await cli.runStandaloneWorker(arguments, environment: bad.environment, timeout: 30)
            : try await cli.run(["worker"] + arguments, environment: bad.environment, timeout: 30)
        cli.removeOutputDirectory()
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(result.status == 2, "stderr: \(result.stderr)")
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        #expect(lines.first?.contains(bad.setting) == true, "stderr: \(result.stderr)")
        let program = executable.split(separator: " ").first.map(String.init) ?? executable
        #expect(lines.first?.hasPrefix("\(program): ") == true, "the line names the program: \(result.stderr)")
        #expect(result.stdout.isEmpty, "stdout: \(result.stdout)")
    }

    @Test("with no endpoint at all, the http backend has nothing to serve: exit 2")
    func nothingToServe() async throws {
        let cli = try QueueCLI()
        let result = try await cli.run(["worker", "--models", "flux,sdxl", "--backend", "http",
                                        "--output-dir", cli.outputDirectory()], timeout: 30)
        cli.removeOutputDirectory()
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(result.status == 2, "stderr: \(result.stderr)")
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        let line = lines.first.map { String($0).lowercased() } ?? ""
        #expect(line.contains("nothing to serve") || line.contains("nothing can be served"), "stderr: \(result.stderr)")
        #expect(line.contains("flux_worker_url") && line.contains("sdxl_worker_url"), "stderr: \(result.stderr)")
    }

    @Test("a model without its endpoint is skipped with the reason; the others are served")
    func missingEndpointSkipsOnlyThatModel() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        var environment = fake.environment()
        environment["SDXL_WORKER_URL"] = ""  // unset: the worker treats empty as unset
        let worker = try cli.startWorker(["--models", "flux,sdxl", "--backend", "http",
                                          "--output-dir", cli.outputDirectory(), "--id", "\(cli.prefix)-w1"],
                                         environment: environment)

        #expect(await worker.waitForOutput(containing: "not serving sdxl: SDXL_WORKER_URL is not set"),
                "worker output:\n\(worker.output)")
        #expect(worker.stderr.contains("not serving sdxl: SDXL_WORKER_URL is not set"))
        // It keeps running and does serve flux.
        let id = try await cli.enqueue("a flux job for the half-configured worker")
        let status = try await cli.waitForStatus(id, "completed")
        #expect(status["status"]?.string == "completed", "\(status)\nworker output:\n\(worker.output)")
        #expect(worker.isRunning, "worker output:\n\(worker.output)")
        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()
        #expect(ended == .exited(0), "worker output:\n\(worker.output)")
    }
}
