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
        if let url = ProcessInfo.processInfo.environment["IMAGEQUEUE_TEST_REDIS_URL"] { return url }
        guard let server = try sharedServer.get() else { throw TestSetupError("no shared Redis") }
        return server.url
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
}

/// The outcome of running a program.
public struct CommandResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs a program to completion with the given environment additions, and stdin closed,
/// waiting off the cooperative pool.
public func runProgram(_ executable: URL, _ arguments: [String], environment: [String: String] = [:],
                       timeout: TimeInterval = 60) async throws -> CommandResult {
    try await offPool { try runProgramBlocking(executable, arguments, environment: environment, timeout: timeout) }
}

private func runProgramBlocking(_ executable: URL, _ arguments: [String], environment: [String: String],
                                timeout: TimeInterval) throws -> CommandResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Read both pipes while the program runs, so a full pipe never blocks it. The reads
    // block, so they run on threads of their own: never on Dispatch's global queues, whose
    // threads Swift's cooperative pool shares.
    nonisolated(unsafe) var outData = Data()
    nonisolated(unsafe) var errData = Data()
    let group = DispatchGroup()
    group.enter()
    Thread.detachNewThread { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    Thread.detachNewThread { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        kill(process.processIdentifier, SIGKILL)
        throw TestSetupError("\(executable.lastPathComponent) \(arguments.joined(separator: " ")) did not finish in \(timeout) s")
    }
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}
