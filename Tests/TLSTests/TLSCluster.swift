import Foundation
import Synchronization
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Three Redis Cluster masters (no replicas) speaking TLS only, clients and the cluster bus
/// alike, with mutual TLS: `--port 0 --tls-port P --tls-cluster yes --tls-replication yes`,
/// the test CA's server certificate, and the client certificate for the nodes' own
/// connections to each other. Made with `redis-cli --tls … --cluster create`. Every node is
/// killed by `stop()`, and at process exit.
final class TLSCluster: Sendable {
    let ports: [Int]
    let directory: URL
    let material: TLSMaterial
    private let pids: [pid_t]

    /// `rediss+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    var url: String { "rediss+cluster://" + ports.map { "127.0.0.1:\($0)" }.joined(separator: ",") }

    private init(ports: [Int], directory: URL, material: TLSMaterial, pids: [pid_t]) {
        self.ports = ports
        self.directory = directory
        self.material = material
        self.pids = pids
    }

    /// Kills every node (SIGKILL), waits for each, and removes the folder.
    func stop() async {
        let pids = pids
        _ = try? await offPool {
            for pid in pids {
                _ = Glibc.kill(pid, SIGKILL)
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            }
        }
        Self.running.withLock { running in
            for pid in pids { running.pids.remove(pid) }
            running.folders.remove(directory.path)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Nodes still running; killed (and the folder removed) when the test process exits.
    private static let running: Mutex<(pids: Set<pid_t>, folders: Set<String>)> = {
        atexit {
            let (pids, folders) = TLSCluster.running.withLock { $0 }
            for pid in pids { kill(pid, SIGKILL) }
            for folder in folders { try? FileManager.default.removeItem(atPath: folder) }
        }
        return Mutex(([], []))
    }()

    /// Starts three masters and waits until every node reports `cluster_state:ok` with the
    /// three slot ranges.
    static func start(material: TLSMaterial) async throws -> TLSCluster {
        let server = try tool("redis-server")
        var ports: [Int] = []
        while ports.count < 3 {
            // The bus listens on port + 10000 (freePort's ports are below 32000, so the bus
            // stays below 65536): it must be free too.
            let port = try RedisServer.freePort()
            if RedisServer.onLoopbackSocket(port: port + 10000, { bind($0, $1, $2) }) { ports.append(port) }
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-tls-cluster-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        running.withLock { _ = $0.folders.insert(directory.path) }
        var pids: [pid_t] = []
        do {
            for port in ports {
                let pid = try spawnChild(server, [
                    "--port", "0", "--tls-port", "\(port)", "--bind", "127.0.0.1",
                    "--tls-cluster", "yes", "--tls-replication", "yes", "--cluster-enabled", "yes",
                    "--tls-cert-file", material.serverCertificate, "--tls-key-file", material.serverKey,
                    "--tls-client-cert-file", material.clientCertificate, "--tls-client-key-file", material.clientKey,
                    "--tls-ca-cert-file", material.caFile, "--tls-auth-clients", "yes",
                    "--cluster-config-file", directory.appendingPathComponent("nodes-\(port).conf").path,
                    // Long: on a loaded 2-core machine a node answering its peers late must not be
                    // marked failed (with no replicas, that would stop the cluster).
                    "--cluster-node-timeout", "30000", "--save", "", "--appendonly", "no",
                    "--dir", directory.path, "--dbfilename", "dump-\(port).rdb", "--loglevel", "warning",
                    "--logfile", directory.appendingPathComponent("redis-\(port).log").path,
                ])
                running.withLock { _ = $0.pids.insert(pid) }
                pids.append(pid)
            }
            let cluster = TLSCluster(ports: ports, directory: directory, material: material, pids: pids)
            do {
                try await cluster.create()
            } catch {
                await cluster.stop()
                throw error
            }
            return cluster
        } catch {
            for pid in pids { kill(pid, SIGKILL) }
            throw error
        }
    }

    private func create() async throws {
        for port in ports {
            try await waitUntil("the TLS node on port \(port) answers PING") {
                (try? await redisCLI(port: port, material: material, ["PING"])) == "PONG"
            }
        }
        let create = try await runProgram(URL(fileURLWithPath: try Self.tool("redis-cli")),
                                          ["--tls", "--cacert", material.caFile, "--cert", material.clientCertificate,
                                           "--key", material.clientKey, "--cluster", "create"]
                                              + ports.map { "127.0.0.1:\($0)" } + ["--cluster-replicas", "0", "--cluster-yes"],
                                          timeout: 60)
        guard create.status == 0 else {
            throw TestSetupError("redis-cli --tls --cluster create exited \(create.status): \(create.stdout)\(create.stderr)\n\(logs())")
        }
        for port in ports {
            var last = ""
            try await waitUntil("node \(port) reports cluster_state:ok with 3 masters (last: \(last))\n\(logs())") {
                let info = (try? await redisCLI(port: port, material: material, ["CLUSTER", "INFO"])) ?? ""
                last = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cluster_state") }.map(String.init) ?? "none"
                let masters = (try? await redisCLI(port: port, material: material, ["CLUSTER", "NODES"]))?
                    .split(whereSeparator: \.isNewline).filter { $0.contains("master") && !$0.contains("fail") }.count
                return info.contains("cluster_state:ok") && masters == 3
            }
        }
    }

    /// Every node's log (for a failure message).
    private func logs() -> String {
        ports.map { port in
            let text = (try? String(contentsOf: directory.appendingPathComponent("redis-\(port).log"), encoding: .utf8)) ?? ""
            return "node \(port):\n\(text.suffix(1500))"
        }.joined(separator: "\n")
    }

    private static func tool(_ name: String) throws -> String {
        for folder in ["/usr/bin", "/usr/local/bin", "/bin"] {
            let candidate = "\(folder)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestSetupError("\(name) is not installed (apt-get install redis-server redis-tools)")
    }
}

/// Polls `condition` every 50 ms until it holds; throws after `timeout` seconds (the limit
/// only keeps a broken setup from hanging the suite).
func waitUntil(_ what: @autoclosure () -> String, timeout: Double = 60,
               _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestSetupError("timed out waiting until \(what())")
}
