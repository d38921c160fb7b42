import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` started from ops/redis.conf, with the ACL users that
/// ops/redis-users.sh writes from ops/redis-users.acl, as the compose file starts it. Only
/// what a test machine needs is overridden on the command line: a free loopback port, a
/// temporary directory for the AOF and the users file, no daemonizing.
final class ACLRedis: Sendable {
    let port: Int
    let directory: URL
    let adminPassword: String
    let workerPassword: String
    private let process: SpawnedProcess

    /// Writes the users file and starts the server; returns once it answers the worker user.
    static func start() async throws -> ACLRedis {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-acl-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let admin = randomPassword(), worker = randomPassword()
        let users = try await writeUsers(to: directory.appendingPathComponent("users.acl").path,
                                         environment: ["REDIS_ADMIN_PASSWORD": admin, "REDIS_WORKER_PASSWORD": worker])
        guard users.status == 0 else { throw TestSetupError("redis-users.sh exited \(users.status): \(users.stderr)") }

        let port = try RedisServer.freePort()
        let root = TestEnvironment.packageRoot.path
        let process = try SpawnedProcess(try executable("redis-server"), [
            "\(root)/ops/redis.conf", "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory.path,
            "--aclfile", directory.appendingPathComponent("users.acl").path, "--daemonize", "no",
        ], environment: ProcessInfo.processInfo.environment)
        let server = ACLRedis(port: port, directory: directory, admin: admin, worker: worker, process: process)
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { throw TestSetupError("redis-server exited: \(process.output)") }
            if RedisServer.canConnectForTests(port: port),
               (try? await server.cli(user: "worker", password: worker, ["PING"]))?.stdout.hasPrefix("PONG") == true {
                return server
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestSetupError("redis-server from ops/redis.conf did not answer on port \(port): \(process.output)")
    }

    private init(port: Int, directory: URL, admin: String, worker: String, process: SpawnedProcess) {
        self.port = port
        self.directory = directory
        adminPassword = admin
        workerPassword = worker
        self.process = process
    }

    deinit {
        process.send(SIGKILL)
        try? FileManager.default.removeItem(at: directory)
    }

    /// Stops the server (SIGTERM) and waits for it.
    func stop() async {
        process.send(SIGTERM)
        _ = try? await process.waitForExit(timeout: 15)
    }

    /// The URL the services use: the worker user, its password in the clear.
    var workerURL: String { "redis://worker:\(workerPassword)@127.0.0.1:\(port)" }

    /// Runs `redis-cli -e` as `user` (the password through REDISCLI_AUTH, as the compose
    /// health check does); `-e` makes an error reply exit 1 and go to stderr.
    func cli(user: String?, password: String?, _ arguments: [String]) async throws -> CommandResult {
        let environment = password.map { ["REDISCLI_AUTH": $0] } ?? [:]
        let login = user.map { ["--user", $0] } ?? []
        return try await runProgram(URL(fileURLWithPath: try Self.executable("redis-cli")),
                                    ["-p", "\(port)", "-e"] + login + arguments,
                                    environment: environment, timeout: 20)
    }

    /// Runs `sh ops/redis-users.sh ops/redis-users.acl OUTPUT` with `environment` (and no
    /// password inherited from the test process).
    static func writeUsers(to output: String, environment: [String: String]) async throws -> CommandResult {
        let root = TestEnvironment.packageRoot.path
        var merged = ["REDIS_ADMIN_PASSWORD": "", "REDIS_WORKER_PASSWORD": ""]
        merged.merge(environment) { $1 }
        return try await runProgram(URL(fileURLWithPath: "/bin/sh"),
                                    ["\(root)/ops/redis-users.sh", "\(root)/ops/redis-users.acl", output],
                                    environment: merged, timeout: 20)
    }

    /// 32 hexadecimal digits.
    static func randomPassword() -> String {
        (0..<4).map { _ in String(format: "%08x", UInt32.random(in: 0...UInt32.max)) }.joined()
    }

    /// A program on PATH (or in /usr/bin), as a full path.
    static func executable(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/bin", "/usr/local/bin"] {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestSetupError("\(name) is not installed (apt-get install redis-server)")
    }
}
