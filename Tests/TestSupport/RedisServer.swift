import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` process on a free loopback port, owned by a test. It can be
/// stopped, killed and started again on the same port (for reconnect tests).
public final class RedisServer: @unchecked Sendable {
    // Safe to share: `pid` is only read and replaced under `lock`.
    public let port: Int
    public let directory: URL
    private let extraArguments: [String]
    /// For a TLS-only server (`launchTLS`): its `--tls-*` arguments; `port` is then the TLS port.
    private let tlsArguments: [String]?
    private var pid: pid_t?
    private let lock = NSLock()

    /// Starts a server from a test task, without blocking the cooperative pool.
    public static func launch(extraArguments: [String] = []) async throws -> RedisServer {
        try await offPool { try RedisServer(extraArguments: extraArguments) }
    }

    /// Starts a server, blocking the calling thread until it accepts connections; from a
    /// test task use `launch`.
    public convenience init(extraArguments: [String] = []) throws {
        try self.init(extraArguments: extraArguments, tlsArguments: nil)
    }

    /// Starts a server; with `tlsArguments` it speaks TLS only (`--port 0 --tls-port <port>`).
    init(extraArguments: [String], tlsArguments: [String]?) throws {
        port = try Self.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-redis-\(port)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.extraArguments = extraArguments
        self.tlsArguments = tlsArguments
        let folder = directory.path
        RedisServer.folders.withLock { _ = $0.insert(folder) }
        try startBlocking()
    }

    deinit {
        signalAndWait(SIGTERM)
        try? FileManager.default.removeItem(at: directory)
    }

    /// `redis://127.0.0.1:<port>`.
    public var url: String { "redis://127.0.0.1:\(port)" }

    /// Starts the process (again) and waits until it accepts connections.
    public func start() async throws { try await offPool { try self.startBlocking() } }

    /// Stops the process (SIGTERM) and waits for it to exit.
    public func stop() async { _ = try? await offPool { self.signalAndWait(SIGTERM) } }

    /// Kills the process (SIGKILL), as a crash would.
    public func kill() async { _ = try? await offPool { self.signalAndWait(SIGKILL) } }

    /// Stops then starts the server on the same port.
    public func restart() async throws {
        try await offPool {
            self.signalAndWait(SIGTERM)
            try self.startBlocking()
        }
    }

    private func startBlocking() throws {
        // A TLS server listens on no plaintext port; its readiness check below is a TCP connect,
        // which a TLS port accepts too.
        let listening = tlsArguments.map { ["--port", "0", "--tls-port", "\(port)"] + $0 } ?? ["--port", "\(port)"]
        let arguments = ["redis-server"] + listening + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                         "--dir", directory.path, "--daemonize", "no", "--loglevel", "warning"] + extraArguments
        // The test owns this child and reaps it itself (waitpid in signalAndWait).
        let child = try spawnChild(try Self.redisServerPath(), Array(arguments.dropFirst()))
        lock.withLock { self.pid = child }
        RedisServer.spawned.withLock { $0.insert(child) }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if Self.canConnect(port: port) { return }
            usleep(20_000)
        }
        throw TestSetupError("redis-server did not start on port \(port)")
    }

    private func signalAndWait(_ signal: Int32) {
        guard let pid = lock.withLock({ () -> pid_t? in
            defer { self.pid = nil }
            return self.pid
        }) else { return }
        Self.stop(pid: pid, port: port, signal)
    }

    /// Sends `signal` to a server this test process spawned, reaps it, and waits (up to 5 s)
    /// until nothing listens on its port: a restart must find the port free.
    static func stop(pid: pid_t, port: Int, _ signal: Int32) {
        Glibc.kill(pid, signal)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        RedisServer.spawned.withLock { _ = $0.remove(pid) }
        let deadline = Date().addingTimeInterval(5)
        while canConnect(port: port), Date() < deadline { usleep(10_000) }
    }

    /// Servers still running; killed when the test process exits, so none outlives a run.
    static let spawned: Mutex<Set<pid_t>> = {
        atexit {
            for pid in RedisServer.spawned.withLock({ $0 }) { Glibc.kill(pid, SIGKILL) }
            for folder in RedisServer.folders.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: folder) }
        }
        return Mutex([])
    }()

    /// Every server's folder, removed when the test process exits.
    static let folders = Mutex<Set<String>>([])

    static func redisServerPath() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/bin", "/usr/local/bin"] {
            let candidate = "\(directory)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestSetupError("redis-server is not installed (apt-get install redis-server)")
    }

    /// A TCP port on 127.0.0.1 that nothing uses now, below Linux's ephemeral range
    /// (32768-60999): a server restarted on its port must not find it taken by some
    /// client connection's local port meanwhile.
    /// Never the same port twice in one test process: two servers starting at the same
    /// moment could otherwise both find a port free, and the loser's probe would reach the
    /// winner.
    public static func freePort() throws -> Int {
        inProcessSetUp()
        for _ in 0..<200 {
            let port = Int.random(in: 20000..<32000)
            guard canBind(port: port), handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            return port
        }
        throw TestSetupError("no free port found")
    }

    private static let handedOut = Mutex<Set<Int>>([])

    static func canBind(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    public static func canConnectForTests(port: Int) -> Bool { canConnect(port: port) }

    static func canConnect(port: Int) -> Bool {
        onLoopbackSocket(port: port) { connect($0, $1, $2) }
    }

    /// Whether `call` (connect, bind) succeeds on a new TCP socket with 127.0.0.1:`port`.
    public static func onLoopbackSocket(port: Int, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Bool {
        guard (0..<65536).contains(port) else { return false }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// A test's setup could not be made (a missing tool, a port that would not open).
public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
