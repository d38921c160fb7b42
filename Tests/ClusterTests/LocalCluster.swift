import Foundation
import RedisClient
import Synchronization
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A Redis Cluster on free 127.0.0.1 ports, in a temporary folder. `shared()` is three
/// masters with no replicas, started once per test process by the first test that asks;
/// `start(replicasPerMaster:nodeTimeoutMilliseconds:)` makes a private one a test may break
/// (and must `stop()`). Every node is killed at exit.
final class LocalCluster: Sendable {
    /// Every node's port; with replicas, `redis-cli` chooses which are masters.
    let ports: [Int]
    let directory: URL
    private let pids: [Int: pid_t]

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    var url: String { "redis+cluster://" + ports.map { "127.0.0.1:\($0)" }.joined(separator: ",") }

    /// The single-node URL of one master.
    func nodeURL(_ port: Int) -> String { "redis://127.0.0.1:\(port)" }

    private init(ports: [Int], directory: URL, pids: [Int: pid_t]) {
        self.ports = ports
        self.directory = directory
        self.pids = pids
    }

    /// Kills one node (SIGKILL), as a crash would, and waits for it to exit.
    func killNode(port: Int) async throws {
        guard let pid = pids[port] else { return }
        try await offPool {
            _ = Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        Self.running.withLock { _ = $0.pids.remove(pid) }
    }

    /// Kills every node and removes the folder.
    func stop() async {
        for port in ports { try? await killNode(port: port) }
        try? FileManager.default.removeItem(at: directory)
        Self.running.withLock { _ = $0.folders.remove(directory.path) }
    }

    /// The process's cluster, started on first use.
    static func shared() async throws -> LocalCluster {
        let task = starting.withLock { task in
            if let task { return task }
            let made = Task { try await LocalCluster.start(replicasPerMaster: 0, nodeTimeoutMilliseconds: 30_000) }
            task = made
            return made
        }
        return try await task.value
    }

    private static let starting = Mutex<Task<LocalCluster, any Error>?>(nil)

    /// Nodes still running; killed (and the folder removed) when the test process exits.
    private static let running: Mutex<(pids: Set<pid_t>, folders: Set<String>)> = {
        atexit {
            let (pids, folders) = LocalCluster.running.withLock { $0 }
            for pid in pids { kill(pid, SIGKILL) }
            for folder in folders { try? FileManager.default.removeItem(atPath: folder) }
        }
        return Mutex(([], []))
    }()

    /// Starts three masters, each with `replicasPerMaster` replicas, and waits until every
    /// node reports `cluster_state:ok` and sees all three masters' slots.
    static func start(replicasPerMaster: Int, nodeTimeoutMilliseconds: Int) async throws -> LocalCluster {
        let server = try tool("redis-server")
        let cli = try tool("redis-cli")
        var ports: [Int] = []
        while ports.count < 3 * (1 + replicasPerMaster) {
            // The cluster bus listens on port + 10000: it must be free too.
            let port = try RedisServer.freePort()
            if canBind(port + 10000) { ports.append(port) }
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-cluster-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        running.withLock { _ = $0.folders.insert(directory.path) }
        // The shared cluster has a long node timeout: on a loaded 2-core machine a node that
        // answers its peers late must not be marked failed (with no replicas, that would stop
        // the cluster).
        var pids: [Int: pid_t] = [:]
        for port in ports {
            let pid = try spawnChild(server, [
                "--port", "\(port)", "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", directory.appendingPathComponent("nodes-\(port).conf").path,
                "--cluster-node-timeout", "\(nodeTimeoutMilliseconds)", "--save", "", "--appendonly", "no",
                "--dir", directory.path, "--dbfilename", "dump-\(port).rdb", "--loglevel", "warning",
                "--logfile", directory.appendingPathComponent("redis-\(port).log").path,
            ])
            running.withLock { _ = $0.pids.insert(pid) }
            pids[port] = pid
        }
        for port in ports {
            try await waitUntil("redis-server on port \(port) accepts connections") {
                RedisServer.canConnectForTests(port: port)
            }
        }
        let create = try await runProgram(URL(fileURLWithPath: cli),
                                          ["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" }
                                              + ["--cluster-replicas", "\(replicasPerMaster)", "--cluster-yes"], timeout: 60)
        guard create.status == 0 else {
            throw TestSetupError("redis-cli --cluster create exited \(create.status): \(create.stdout)\(create.stderr)")
        }
        // Every node must see the cluster as ok, with the three masters' slot ranges and
        // their replicas; every replica must be in sync with its master.
        for port in ports {
            let node = runInTest(RedisConnection(configuration: try RedisConfiguration(url: "redis://127.0.0.1:\(port)")))
            defer { node.close() }
            var state = ""
            try await waitUntil("node \(port) reports cluster_state:ok (last: \(state))") {
                let info = try? await node.send("CLUSTER", "INFO").string
                let slots = try? await node.send("CLUSTER", "SLOTS").array
                state = info?.split(separator: "\r\n").first { $0.hasPrefix("cluster_state") }.map(String.init) ?? "none"
                let replication = try? await node.send("INFO", "replication").string
                let synced = replication?.contains("role:master") == true || replication?.contains("master_link_status:up") == true
                return info?.contains("cluster_state:ok") == true && slots?.count == 3 && synced
                    && slots?.allSatisfy { ($0.array?.count ?? 0) == 3 + replicasPerMaster } == true
            }
        }
        return LocalCluster(ports: ports, directory: directory, pids: pids)
    }

    private static func tool(_ name: String) throws -> String {
        for folder in ["/usr/bin", "/usr/local/bin", "/bin"] {
            let candidate = "\(folder)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestSetupError("\(name) is not installed (apt-get install redis-server redis-tools)")
    }

    private static func canBind(_ port: Int) -> Bool {
        RedisServer.onLoopbackSocket(port: port) { bind($0, $1, $2) }
    }
}

/// Polls `condition` every 50 ms until it holds; throws after `timeout` seconds (the limit
/// only keeps a broken setup from hanging the suite).
func waitUntil(_ what: @autoclosure () -> String, timeout: Double = 30,
               _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestSetupError("timed out waiting until \(what())")
}
