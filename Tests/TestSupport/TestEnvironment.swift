import DedicatedThreads
import Foundation

/// The Redis every ordinary test shares, each test under its own key prefix.
///
/// `IMAGEQUEUE_TEST_REDIS_URL` names a server started by the test script; without it the
/// first test starts one itself (redis-server must be installed).
public enum TestEnvironment {
    private static let sharedServer: Result<RedisServer?, any Error> = Result {
        if ProcessInfo.processInfo.environment["IMAGEQUEUE_TEST_REDIS_URL"] != nil { return nil }
        return try RedisServer()
    }

    /// The shared server's URL.
    public static func redisURL() throws -> String {
        inProcessSetUp()
        if let url = ProcessInfo.processInfo.environment["IMAGEQUEUE_TEST_REDIS_URL"] { return url }
        guard let server = try sharedServer.get() else { throw TestSetupError("no shared Redis") }
        return server.url
    }

    /// Settings `imagequeue` reads from the environment besides `IMAGEQUEUE_*`.
    private static let backendVariables = [
        "FLUX_WORKER_URL", "SDXL_WORKER_URL", "SDXL_API_KEY", "LLM_PROVIDER", "OPENROUTER_API_KEY",
        "OPENROUTER_BASE_URL", "OPENROUTER_MODEL", "GEMINI_API_KEY", "GEMINI_BASE_URL", "GEMINI_MODEL",
    ]

    /// The environment for an `imagequeue` child: the inherited one with every `IMAGEQUEUE_*`
    /// and backend variable blanked (an empty variable counts as unset), so nothing the test
    /// runner has set leaks into a test; rate limiting off; then `extra`.
    public static func imagequeueEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for name in environment.keys where name.hasPrefix("IMAGEQUEUE_") || backendVariables.contains(name) {
            environment[name] = ""
        }
        environment["IMAGEQUEUE_RATE_LIMIT"] = "off"
        return environment.merging(extra) { $1 }
    }

    /// A key prefix no other test uses.
    public static func uniquePrefix(_ label: String = "t") -> String {
        "\(label)\(UInt32.random(in: 0...UInt32.max))"
    }

    /// The package's root folder.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The built `imagequeue` binary (the test script builds it before the tests run).
    public static func imagequeueBinary() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["IMAGEQUEUE_BINARY"] { return URL(fileURLWithPath: path) }
        let candidates = [".build/debug/imagequeue", ".build/x86_64-unknown-linux-gnu/debug/imagequeue",
                          ".build/aarch64-unknown-linux-gnu/debug/imagequeue"]
        for candidate in candidates {
            let url = packageRoot.appendingPathComponent(candidate)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw TestSetupError("imagequeue is not built: run `swift build` first")
    }

    /// The built `imagequeue-worker` binary, beside `imagequeue`.
    public static func standaloneWorkerBinary() throws -> URL {
        let url = try imagequeueBinary().deletingLastPathComponent().appendingPathComponent("imagequeue-worker")
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw TestSetupError("imagequeue-worker is not built beside \(url.deletingLastPathComponent().path): run `swift build` first")
        }
        return url
    }
}

/// The outcome of running a program.
public struct CommandResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs a program to completion with the given environment additions and stdin from
/// /dev/null, never blocking the cooperative pool. It is started by `SpawnedProcess`:
/// close-on-exec output channels and no inherited descriptors, so no other child can hold
/// this program's output open (or it another's).
public func runProgram(_ executable: URL, _ arguments: [String], environment: [String: String] = [:],
                       timeout: TimeInterval = 60) async throws -> CommandResult {
    var merged = ProcessInfo.processInfo.environment
    for (key, value) in environment { merged[key] = value }
    let process = try SpawnedProcess(executable.path, arguments, environment: merged)
    let status: Int32
    switch try await process.waitForExit(timeout: timeout) {
    case .exited(let code): status = code
    case .signalled(let signal): status = 128 + signal
    }
    return CommandResult(status: status, stdout: process.stdout, stderr: process.stderr)
}

/// What a test process needs before it talks to a server, done by every TestSupport call
/// that hands one out (a Redis URL, a free port, a fake server, a child process): SIGPIPE
/// ignored, as the executables do at their start (`BrokenPipes`).
func inProcessSetUp() {
    BrokenPipes.ignore()
}
