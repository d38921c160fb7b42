import Foundation
import TestSupport

/// The built `imagequeue` binary, run as a subprocess against the shared test Redis under a
/// key prefix of its own, with rate limiting off unless a test asks for it.
struct CLI: Sendable {
    let binary: URL
    let redisURL: String
    let prefix: String
    /// Added to the inherited environment on every run.
    let environment: [String: String]

    /// Settings the CLI reads from the environment. The ones the test runner itself has set are
    /// blanked (the CLI treats an empty variable as unset), so they cannot leak into a test.
    private static let queueVariables = ["IMAGEQUEUE_REDIS_URL", "IMAGEQUEUE_PREFIX", "IMAGEQUEUE_MODELS",
                                         "IMAGEQUEUE_MAX_PROMPT_LENGTH", "IMAGEQUEUE_MAX_ATTEMPTS"]

    /// - Parameters:
    ///   - redisURL: the server; the shared test server when nil.
    ///   - rateLimit: `IMAGEQUEUE_RATE_LIMIT`.
    init(redisURL: String? = nil, rateLimit: String = "off") throws {
        binary = try TestEnvironment.imagequeueBinary()
        self.redisURL = try redisURL ?? TestEnvironment.redisURL()
        prefix = TestEnvironment.uniquePrefix("cli")
        var environment = ["IMAGEQUEUE_RATE_LIMIT": rateLimit]
        let inherited = ProcessInfo.processInfo.environment
        for name in Self.queueVariables where inherited[name] != nil { environment[name] = "" }
        self.environment = environment
    }

    /// Runs `imagequeue ARGUMENTS --redis URL --prefix P`.
    func run(_ arguments: [String], environment extra: [String: String] = [:],
             timeout: TimeInterval = 60) async throws -> CommandResult {
        try await runExactly(arguments + ["--redis", redisURL, "--prefix", prefix], environment: extra, timeout: timeout)
    }

    /// Runs `imagequeue ARGUMENTS` with no options added.
    func runExactly(_ arguments: [String], environment extra: [String: String] = [:],
                    timeout: TimeInterval = 60) async throws -> CommandResult {
        try await runProgram(binary, arguments, environment: environment.merging(extra) { $1 }, timeout: timeout)
    }

    /// Enqueues a prompt and returns the printed job id.
    /// - Throws: `TestSetupError` when the command does not succeed.
    func enqueue(_ prompt: String = "a red fox in the snow", model: String = "flux", user: String = "alice",
                 options: [String] = []) async throws -> String {
        let result = try await run(["enqueue", "--model", model, "--user", user] + options + [prompt])
        guard result.status == 0 else {
            throw TestSetupError("enqueue exited \(result.status): \(result.stderr)")
        }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a command that must succeed and print one JSON document.
    /// - Throws: `TestSetupError` when it fails or prints something else.
    func json(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> ParsedJSON {
        let result = try await run(arguments, environment: extra)
        guard result.status == 0 else {
            throw TestSetupError("imagequeue \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
        }
        return try ParsedJSON.parse(result.stdout)
    }

    /// `queues --json`, for counting what a command left behind.
    func queues() async throws -> ParsedJSON {
        try await json(["queues", "--json"])
    }

    /// Starts `imagequeue ARGUMENTS --redis URL --prefix P` in the background.
    func start(_ arguments: [String]) throws -> BackgroundProgram {
        try BackgroundProgram(binary, arguments + ["--redis", redisURL, "--prefix", prefix], environment: environment)
    }
}

/// Worker-side protocol steps (claim, progress, complete, fail), which the CLI cannot take,
/// run through `Tests/Python/worker_steps.py` with the scripts the binary embeds.
struct WorkerSteps: Sendable {
    let cli: CLI

    /// A claimed job and its fencing token.
    struct Claim: Sendable {
        let id: String
        let token: String
        let request: ParsedJSON
    }

    static let workerID = "test-worker"

    private static var script: String {
        TestEnvironment.packageRoot.appendingPathComponent("Tests/Python/worker_steps.py").path
    }

    private func step(_ arguments: [String]) async throws -> ParsedJSON {
        let result = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"),
                                    ["python3", Self.script, "--binary", cli.binary.path, "--redis", cli.redisURL,
                                     "--prefix", cli.prefix] + arguments)
        guard result.status == 0 else {
            throw TestSetupError("worker_steps.py \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
        }
        return try ParsedJSON.parse(result.stdout)
    }

    /// Claims the next job of a model.
    /// - Throws: `TestSetupError` when nothing could be claimed.
    func claim(model: String = "flux") async throws -> Claim {
        let reply = try await step(["claim", "--model", model, "--worker", Self.workerID])
        guard reply["result"]?.string == "ok", let id = reply["id"]?.string, let token = reply["token"]?.string else {
            throw TestSetupError("claim found no job: \(reply)")
        }
        return Claim(id: id, token: token, request: reply["request"] ?? .null)
    }

    /// Moves a claimed job to another running stage.
    func progress(_ claim: Claim, stage: String, detail: String = "{}") async throws {
        _ = try await step(["progress", "--id", claim.id, "--token", claim.token, "--stage", stage, "--detail", detail])
    }

    /// Completes a claimed job with a directory-store result at `path`.
    func complete(_ claim: Claim, path: String = "/tmp/imagequeue-cli-test.png") async throws {
        let result = #"{"content_type":"image/png","bytes":4321,"store":"directory","path":"\#(path)"}"#
        _ = try await step(["complete", "--id", claim.id, "--token", claim.token, "--result", result])
    }

    /// Fails a claimed job's attempt; returns `requeued` or `dead`.
    func fail(_ claim: Claim, mode: String, code: String = "backend_rejected",
              message: String = "the backend refused the prompt") async throws -> String {
        let reply = try await step(["fail", "--id", claim.id, "--token", claim.token, "--mode", mode,
                              "--code", code, "--message", message])
        return reply["result"]?.string ?? "\(reply)"
    }

    /// Claims the given job (it must be next), reports an enhanced prompt, and completes it.
    func runToCompletion(_ id: String, model: String = "flux") async throws {
        let claim = try await claim(model: model)
        guard claim.id == id else { throw TestSetupError("claimed \(claim.id), expected \(id)") }
        try await progress(claim, stage: "generating", detail: #"{"enhanced_prompt":"an enhanced prompt"}"#)
        try await complete(claim)
    }
}

/// A program running in the background whose stdout is read line by line as it comes.
final class BackgroundProgram: @unchecked Sendable {
    // Safe to share: `output` and `errors` are only touched under `lock`; `process` is set once.
    private let process: Process
    private let lock = NSLock()
    private var output = Data()
    private var errors = Data()
    private let readers = DispatchGroup()

    init(_ executable: URL, _ arguments: [String], environment extra: [String: String]) throws {
        process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Weakly: the reader threads run until the program's output ends, and the program is
        // killed only in deinit, which a strong capture would keep from ever running.
        read(out.fileHandleForReading) { [weak self] data in self?.output.append(data) }
        read(err.fileHandleForReading) { [weak self] data in self?.errors.append(data) }
    }

    deinit {
        // SIGKILL: a child started from a Swift task thread inherits its mask, which blocks SIGTERM.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    private func read(_ handle: FileHandle, into append: @escaping @Sendable (Data) -> Void) {
        readers.enter()
        // A blocking read: on a thread of its own, never on Dispatch's global queues, whose
        // threads Swift's cooperative pool shares.
        Thread.detachNewThread { [lock, readers] in
            while true {
                let data = handle.readChunk()
                if data.isEmpty { break }
                lock.withLock { append(data) }
            }
            readers.leave()
        }
    }

    /// The complete lines printed so far.
    var lines: [String] {
        let text = lock.withLock { String(decoding: output, as: UTF8.self) }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines.removeLast()  // the unfinished rest after the last newline
        return lines
    }

    /// Waits until at least `count` lines were printed or the program ended; returns the lines.
    /// The deadline only keeps a broken program from hanging the suite.
    func waitForLines(_ count: Int, deadline seconds: TimeInterval = 30) async -> [String] {
        let deadline = Date().addingTimeInterval(seconds)
        while lines.count < count, process.isRunning, Date() < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        return lines
    }

    /// Waits for the program to exit and returns everything it printed.
    /// - Throws: `TestSetupError` (after killing it) when it does not exit in time.
    func waitForExit(timeout: TimeInterval = 30) async throws -> FinishedProgram {
        try await offPool { try self.waitForExitBlocking(timeout: timeout) }
    }

    private func waitForExitBlocking(timeout: TimeInterval) throws -> FinishedProgram {
        if readers.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            throw TestSetupError("\(process.arguments?.first ?? "program") did not exit in \(timeout) s; printed \(lines)")
        }
        process.waitUntilExit()
        return lock.withLock {
            FinishedProgram(status: process.terminationStatus, stdout: String(decoding: output, as: UTF8.self),
                            stderr: String(decoding: errors, as: UTF8.self))
        }
    }
}

/// What a background program printed, and how it ended.
struct FinishedProgram: Sendable {
    let status: Int32
    let stdout: String
    let stderr: String
}
