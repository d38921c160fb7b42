import Foundation

/// The built `imagequeue` binary against one Redis under a key prefix of its own: the
/// producer commands run to completion, `worker` runs in the background as a
/// `SpawnedProcess`. Rate limiting is off.
public struct QueueCLI: Sendable {
    public let binary: URL
    public let redisURL: String
    public let prefix: String

    /// - Parameter redisURL: the server; the shared test server when nil.
    public init(redisURL: String? = nil, label: String = "wp") throws {
        binary = try TestEnvironment.imagequeueBinary()
        self.redisURL = try redisURL ?? TestEnvironment.redisURL()
        prefix = TestEnvironment.uniquePrefix(label)
    }

    /// The environment for `imagequeue` children (see TestEnvironment.imagequeueEnvironment).
    public static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        TestEnvironment.imagequeueEnvironment(extra)
    }

    /// Runs `imagequeue ARGUMENTS --redis URL --prefix P` to completion.
    public func run(_ arguments: [String], environment extra: [String: String] = [:], timeout: Double = 60) async throws -> CommandResult {
        try await runExactly(arguments + ["--redis", redisURL, "--prefix", prefix], environment: extra, timeout: timeout)
    }

    /// Runs the lean `imagequeue-worker ARGUMENTS --redis URL --prefix P` to completion.
    public func runStandaloneWorker(_ arguments: [String], environment extra: [String: String] = [:],
                                    timeout: Double = 60) async throws -> CommandResult {
        try await runProgram(TestEnvironment.standaloneWorkerBinary(), arguments + ["--redis", redisURL, "--prefix", prefix],
                             environment: Self.environment(extra), timeout: timeout)
    }

    /// Runs `imagequeue ARGUMENTS` with no options added.
    public func runExactly(_ arguments: [String], environment extra: [String: String] = [:], timeout: Double = 60) async throws -> CommandResult {
        // runProgram inherits the test process's environment and adds ours, so blanked
        // variables must be passed as such.
        try await runProgram(binary, arguments, environment: Self.environment(extra), timeout: timeout)
    }

    /// Runs a command that must succeed and print one JSON document.
    /// - Throws: `TestSetupError` when it fails or prints something else.
    public func json(_ arguments: [String]) async throws -> ParsedJSON {
        let result = try await run(arguments)
        guard result.status == 0 else {
            throw TestSetupError("imagequeue \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
        }
        return try ParsedJSON.parse(result.stdout)
    }

    /// Enqueues a prompt and returns the job id.
    /// - Throws: `TestSetupError` when the command does not succeed.
    public func enqueue(_ prompt: String, model: String = "flux", user: String = "alice", enhance: Bool = true) async throws -> String {
        let reply = try await json(["enqueue", "--json", "--model", model, "--user", user] + (enhance ? [] : ["--no-enhance"]) + [prompt])
        guard let id = reply["id"]?.string else { throw TestSetupError("enqueue printed no id: \(reply)") }
        return id
    }

    /// `status --json` of a job.
    public func status(_ id: String) async throws -> ParsedJSON {
        try await json(["status", "--json", id])
    }

    /// Polls `status --json` until `condition` holds; returns the last status either way
    /// (the deadline only keeps a broken worker from hanging the suite).
    @discardableResult
    public func waitForStatus(_ id: String, timeout: Double = 30,
                       until condition: (ParsedJSON) -> Bool) async throws -> ParsedJSON {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        var status = try await status(id)
        while !condition(status), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            status = try await self.status(id)
        }
        return status
    }

    /// Polls until the job's status is `wanted` (or the deadline passes); returns the last status.
    @discardableResult
    public func waitForStatus(_ id: String, _ wanted: String, timeout: Double = 30) async throws -> ParsedJSON {
        try await waitForStatus(id, timeout: timeout) { $0["status"]?.string == wanted }
    }

    /// Starts `imagequeue worker ARGUMENTS --redis URL --prefix P` in the background.
    public func startWorker(_ arguments: [String], environment extra: [String: String] = [:]) throws -> SpawnedProcess {
        try start(["worker"] + arguments + ["--redis", redisURL, "--prefix", prefix], environment: extra)
    }

    /// Starts the lean `imagequeue-worker ARGUMENTS --redis URL --prefix P` in the background.
    public func startStandaloneWorker(_ arguments: [String], environment extra: [String: String] = [:]) throws -> SpawnedProcess {
        try SpawnedProcess(TestEnvironment.standaloneWorkerBinary().path, arguments + ["--redis", redisURL, "--prefix", prefix],
                           environment: Self.environment(extra))
    }

    /// Starts `imagequeue ARGUMENTS` (no options added) in the background.
    public func start(_ arguments: [String], environment extra: [String: String] = [:]) throws -> SpawnedProcess {
        try SpawnedProcess(binary.path, arguments, environment: Self.environment(extra))
    }

    /// A fresh directory for a worker's images, under the system's temporary directory.
    public func outputDirectory() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("imagequeue-\(prefix)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    /// Removes the directory `outputDirectory()` made.
    public func removeOutputDirectory() {
        try? FileManager.default.removeItem(at: FileManager.default.temporaryDirectory.appendingPathComponent("imagequeue-\(prefix)"))
    }
}

/// The prompts a fake service received, in arrival order.
public func receivedPrompts(_ fake: FakeBackends, _ service: String) async throws -> [String] {
    try await fake.requests(service).map { ($0["prompt"] as? String) ?? "" }
}

/// Polls until the fake has received a request for `service` carrying `prompt`.
/// - Returns: false when the deadline passes first.
public func waitForRequest(_ fake: FakeBackends, _ service: String, prompt: String, timeout: Double = 30) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
    while ContinuousClock.now < deadline {
        if try await receivedPrompts(fake, service).contains(prompt) { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return false
}
