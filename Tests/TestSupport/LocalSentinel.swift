import Foundation
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// A Redis Sentinel deployment of real processes on free loopback ports, owned by a test: a
/// master, one replica of it, and three sentinels (`redis-server <conf> --sentinel`, quorum 2,
/// a master is down after 1 s) that monitor it under `masterName`. Every process has its own
/// config file in a temporary folder (passwords go there, never on a command line); the
/// sentinels rewrite theirs as they learn. `start` returns once the sentinels agree on the
/// master, know each other and see the replica healthy, so a failover can pick it.
///
/// The master moves with `killMaster()` (SIGKILL, as a crash) or `failover()` (`SENTINEL
/// failover`: the live master is demoted to a replica of the new one); `waitForMaster(notOn:)`
/// waits until the sentinels announce the new one. Every process is killed by `stop()`, when
/// the fixture is released, and at the latest when the test process exits.
///
/// With `tls`, every process speaks TLS only (`port 0`, `tls-port P`, the material's server
/// certificate, its CA trusted, no client certificate asked for) and talks TLS to the others
/// (`tls-replication yes`: the replica to the master, each sentinel to the data servers and to
/// the other sentinels); `url` is then `rediss+sentinel://…`, and the fixture's own commands
/// (`node`, `sentinel`, the readiness and failover checks) go over TLS too
/// (`LoopbackRedis.call(port:password:tls:_:)`).
public final class LocalSentinel: @unchecked Sendable {
    // Safe to share: `pids` is only read and changed under `lock`; everything else is constant.
    /// The master's name in the sentinels' configuration.
    public let masterName: String
    /// The port of the first master (the replica's after a failover: see `currentMasterPort()`).
    public let masterPort: Int
    /// The port of the server that starts as the replica.
    public let replicaPort: Int
    /// The sentinels' ports.
    public let sentinelPorts: [Int]
    /// The password of the master and the replica (`requirepass`, and `masterauth` between them).
    public let masterPassword: String?
    /// The sentinels' own password (`requirepass` of the sentinels).
    public let sentinelPassword: String?
    /// The certificates of a TLS-only deployment, nil for plaintext.
    public let tls: TLSMaterial?
    /// The folder with every config file, data folder and log.
    public let directory: URL
    private var pids: [Int: pid_t] = [:]
    private let lock = NSLock()

    /// Starts the deployment and waits until it is ready for a failover.
    /// - Parameters:
    ///   - masterName: the name the sentinels monitor the master under.
    ///   - masterPassword: `requirepass` of both data servers (and `sentinel auth-pass`).
    ///   - sentinelPassword: `requirepass` of the sentinels (and `sentinel sentinel-pass`).
    ///   - tls: when given, every process listens on TLS only, with `tls.serverCertificate`
    ///     (SAN 127.0.0.1) and `tls.caFile`, and talks TLS to the others.
    ///   - readyWithin: how long the sentinels may take to agree (seconds).
    /// - Throws: `TestSetupError` (after killing what started) when a process does not start or
    ///   the sentinels do not agree in time.
    public static func start(masterName: String = "iq-master", masterPassword: String? = nil,
                             sentinelPassword: String? = nil, tls: TLSMaterial? = nil,
                             readyWithin: Double = 90) async throws -> LocalSentinel {
        let deployment = try await offPool {
            try LocalSentinel(masterName: masterName, masterPassword: masterPassword, sentinelPassword: sentinelPassword, tls: tls)
        }
        do {
            try await deployment.waitUntilReady(within: readyWithin)
        } catch {
            await deployment.stop()
            throw error
        }
        return deployment
    }

    private init(masterName: String, masterPassword: String?, sentinelPassword: String?, tls: TLSMaterial?) throws {
        self.masterName = masterName
        self.tls = tls
        self.masterPassword = masterPassword
        self.sentinelPassword = sentinelPassword
        masterPort = try RedisServer.freePort()
        replicaPort = try RedisServer.freePort()
        sentinelPorts = try (0..<3).map { _ in try RedisServer.freePort() }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-sentinel-\(masterPort)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let folder = directory.path
        RedisServer.folders.withLock { _ = $0.insert(folder) }
        do {
            try startDataServer(port: masterPort, replicaOf: nil)
            try startDataServer(port: replicaPort, replicaOf: masterPort)
            for port in sentinelPorts { try startSentinel(port: port) }
        } catch {
            killAll()
            throw error
        }
    }

    deinit {
        killAll()
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: - What tests use

    /// `redis+sentinel://[:<master password>@]127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/<name>`,
    /// with the master's password when it has one (`rediss+sentinel://…` for a TLS deployment).
    public var url: String { url(password: masterPassword) }

    /// The Sentinel URL with `password` (none when nil) as the master's credentials, and `database`.
    public func url(password: String?, database: Int? = nil) -> String {
        let credentials = password.map { ":\($0)@" } ?? ""
        let hosts = sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        let scheme = tls == nil ? "redis+sentinel" : "rediss+sentinel"
        return "\(scheme)://\(credentials)\(hosts)/\(masterName)" + (database.map { "/\($0)" } ?? "")
    }

    /// Where the sentinels (the first that answers) say the master is now.
    /// - Throws: `TestSetupError` when no sentinel answers or one answers something else.
    public func currentMasterPort() async throws -> Int {
        var failures: [String] = []
        for port in sentinelPorts {
            do {
                if let master = try await masterPort(accordingTo: port) { return master }
                failures.append("\(port): no master named \(masterName)")
            } catch {
                failures.append("\(port): \(error)")
            }
        }
        throw TestSetupError("no sentinel named the master of \(masterName): \(failures.joined(separator: "; "))")
    }

    /// Kills (SIGKILL) the server the sentinels name as the master now, as a crash would, and
    /// waits until it has exited and its port is closed. The sentinels fail over to the
    /// replica about a second later (`waitForMaster(notOn:)`).
    /// - Returns: the killed master's port.
    @discardableResult
    public func killMaster() async throws -> Int {
        let port = try await currentMasterPort()
        try await offPool { () throws -> Void in
            guard self.signalAndWait(port: port, SIGKILL) else {
                throw TestSetupError("the master on port \(port) is not a process of this deployment")
            }
        }
        return port
    }

    /// Kills (SIGKILL) the data server on `port`, master or replica.
    public func kill(port: Int) async {
        _ = try? await offPool { self.signalAndWait(port: port, SIGKILL) }
    }

    /// Asks a sentinel for a failover of the live master (`SENTINEL failover <name>`): the
    /// replica is promoted, then the old master is made a replica of it. Retried while the
    /// sentinels answer that one is already under way or that no replica is fit yet (their view
    /// of the replica is refreshed every few seconds).
    /// - Returns: the port of the master at the time of the request.
    /// - Throws: `TestSetupError` when no sentinel accepts within `within` seconds.
    @discardableResult
    public func failover(within limit: Double = 60) async throws -> Int {
        let before = try await currentMasterPort()
        let deadline = ContinuousClock.now + .milliseconds(Int64(limit * 1000))
        var last = ""
        var index = 0
        while ContinuousClock.now < deadline {
            let sentinel = sentinelPorts[index % sentinelPorts.count]
            index += 1
            do {
                let reply = try await self.sentinel(sentinel, ["SENTINEL", "failover", masterName])
                if reply == .status("OK") { return before }
                last = "\(sentinel): \(reply)"
            } catch {
                last = "\(sentinel): \(error)"
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw TestSetupError("no sentinel started a failover of \(masterName) within \(limit) s: \(last)")
    }

    /// Waits until every sentinel that answers names the same master, not on `port`, and that
    /// server says (ROLE) it is a master.
    /// - Returns: the new master's port.
    /// - Throws: `TestSetupError` when that does not happen within `within` seconds.
    @discardableResult
    public func waitForMaster(notOn port: Int, within limit: Double = 90) async throws -> Int {
        let deadline = ContinuousClock.now + .milliseconds(Int64(limit * 1000))
        var last = "nothing asked yet"
        while ContinuousClock.now < deadline {
            var named: Set<Int> = []
            var answered = 0
            for sentinel in sentinelPorts {
                if let master = try? await masterPort(accordingTo: sentinel) {
                    named.insert(master)
                    answered += 1
                }
            }
            if answered >= 2, named.count == 1, let master = named.first, master != port {
                if try await role(of: master) == "master" { return master }
                last = "the sentinels name \(master), which is not a master yet"
            } else {
                last = "the sentinels name \(named.sorted()) (\(answered) answered)"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSetupError("no new master of \(masterName) within \(limit) s: \(last)\n\(logTail())")
    }

    /// Waits until the server on `port` says (ROLE) it is a replica: a demoted master.
    /// - Throws: `TestSetupError` when it does not within `within` seconds.
    public func waitForReplica(on port: Int, within limit: Double = 90) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int64(limit * 1000))
        var last = "nothing"
        while ContinuousClock.now < deadline {
            last = (try? await role(of: port)) ?? "no answer"
            if last == "slave" { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSetupError("the server on port \(port) is still a \(last) after \(limit) s\n\(logTail())")
    }

    /// Waits until the replica has everything the current master has written so far (its
    /// replication offset reaches the master's), so that a failover then loses nothing.
    /// - Throws: `TestSetupError` when it does not catch up within `within` seconds.
    public func waitUntilReplicated(within limit: Double = 60) async throws {
        let master = try await currentMasterPort()
        let replica = master == masterPort ? replicaPort : masterPort
        let role = try await node(master, ["ROLE"]).array ?? []
        guard role.first?.string == "master", let target = role.count > 1 ? role[1].int : nil else {
            throw TestSetupError("the master on port \(master) answered ROLE \(role)")
        }
        let deadline = ContinuousClock.now + .milliseconds(Int64(limit * 1000))
        var reached: Int64 = -1
        while ContinuousClock.now < deadline {
            // ROLE of a replica: slave, host, port, state, offset.
            let role = try await node(replica, ["ROLE"]).array ?? []
            reached = role.count > 4 ? role[4].int ?? -1 : -1
            if reached >= target { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestSetupError("the replica on port \(replica) reached offset \(reached) of \(target) within \(limit) s")
    }

    /// The first word of `ROLE` on the data server on `port` (`master`, `slave`).
    public func role(of port: Int) async throws -> String? {
        try await node(port, ["ROLE"]).array?.first?.string
    }

    /// Sends one command to the data server on `port` directly (with the master password;
    /// over TLS in a TLS deployment).
    /// - Throws: `TestSetupError` when it cannot be reached.
    public func node(_ port: Int, _ words: [String]) async throws -> RESPValue {
        try await call(port, password: masterPassword, words)
    }

    /// Sends one command to the sentinel on `port` (with the sentinels' password; over TLS in a
    /// TLS deployment).
    public func sentinel(_ port: Int, _ words: [String]) async throws -> RESPValue {
        try await call(port, password: sentinelPassword, words)
    }

    private func call(_ port: Int, password: String?, _ words: [String]) async throws -> RESPValue {
        guard let tls else { return try await LoopbackRedis.call(port: port, password: password, words) }
        return try await LoopbackRedis.call(port: port, password: password, tls: tls, words)
    }

    /// Kills every process of the deployment and waits for each.
    public func stop() async {
        _ = try? await offPool { self.killAll() }
    }

    /// The last lines of every log, for a failure message (no password is logged).
    public func logTail(lines: Int = 15) -> String {
        let logs = (try? FileManager.default.contentsOfDirectory(atPath: directory.path))?.filter { $0.hasSuffix(".log") }.sorted() ?? []
        return logs.map { name in
            let text = (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
            let tail = text.split(separator: "\n").suffix(lines).joined(separator: "\n")
            return "--- \(name)\n\(tail)"
        }.joined(separator: "\n")
    }

    // MARK: - Readiness

    /// Every sentinel names the first master, knows the two others and one replica; the replica
    /// is linked to the master and no sentinel flags it down or disconnected.
    private func waitUntilReady(within limit: Double) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int64(limit * 1000))
        var last = "nothing asked yet"
        while ContinuousClock.now < deadline {
            if let missing = await notReadyBecause() {
                last = missing
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            return
        }
        throw TestSetupError("the sentinels of \(masterName) were not ready within \(limit) s: \(last)\n\(logTail())")
    }

    /// Why the deployment is not ready yet, or nil when it is.
    private func notReadyBecause() async -> String? {
        do {
            let role = try await node(replicaPort, ["ROLE"]).array ?? []
            guard role.first?.string == "slave", role.count >= 4, role[3].string == "connected" else {
                return "the replica is not connected to the master yet (ROLE \(role))"
            }
            for sentinel in sentinelPorts {
                let master = Self.fields(try await self.sentinel(sentinel, ["SENTINEL", "master", masterName]))
                guard master["port"] == "\(masterPort)", master["flags"] == "master" else {
                    return "the sentinel \(sentinel) sees the master as \(master["port"] ?? "?") with flags \(master["flags"] ?? "?")"
                }
                guard master["num-other-sentinels"] == "2" else {
                    return "the sentinel \(sentinel) knows \(master["num-other-sentinels"] ?? "?") other sentinels"
                }
                let replicas = (try await self.sentinel(sentinel, ["SENTINEL", "replicas", masterName]).array ?? []).map(Self.fields)
                guard let replica = replicas.first(where: { $0["port"] == "\(replicaPort)" }) else {
                    return "the sentinel \(sentinel) does not see the replica yet"
                }
                let flags = replica["flags"] ?? ""
                guard !flags.contains("s_down"), !flags.contains("o_down"), !flags.contains("disconnected"),
                      replica["master-link-status"] == "ok" else {
                    return "the sentinel \(sentinel) sees the replica with flags \(flags), link \(replica["master-link-status"] ?? "?")"
                }
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// A flat `[key, value, key, value…]` reply as a dictionary.
    static func fields(_ reply: RESPValue) -> [String: String] {
        let items = reply.array?.map { $0.string ?? "" } ?? []
        var fields: [String: String] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) { fields[items[index]] = items[index + 1] }
        return fields
    }

    /// The master port the sentinel on `sentinel` names (nil: it knows no such master).
    private func masterPort(accordingTo sentinel: Int) async throws -> Int? {
        let reply = try await self.sentinel(sentinel, ["SENTINEL", "get-master-addr-by-name", masterName])
        if reply.isNull { return nil }
        guard let parts = reply.array, parts.count == 2, let port = parts[1].string.flatMap({ Int($0) }) else {
            throw TestSetupError("the sentinel \(sentinel) answered \(reply)")
        }
        return port
    }

    // MARK: - Processes

    private func startDataServer(port: Int, replicaOf master: Int?) throws {
        let data = directory.appendingPathComponent("data-\(port)")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        var lines = listening(on: port) + ["bind 127.0.0.1", "save \"\"", "appendonly no", "daemonize no", "loglevel notice",
                     "dir \(data.path)", "logfile \(directory.appendingPathComponent("redis-\(port).log").path)"]
        if let masterPassword { lines += ["requirepass \(masterPassword)", "masterauth \(masterPassword)"] }
        if let master { lines.append("replicaof 127.0.0.1 \(master)") }
        try launch(port: port, config: "redis-\(port).conf", lines: lines, sentinel: false)
    }

    private func startSentinel(port: Int) throws {
        var lines = listening(on: port) + ["bind 127.0.0.1", "daemonize no", "loglevel notice", "dir \(directory.path)",
                     "logfile \(directory.appendingPathComponent("sentinel-\(port).log").path)",
                     "sentinel monitor \(masterName) 127.0.0.1 \(masterPort) 2",
                     "sentinel down-after-milliseconds \(masterName) 1000",
                     "sentinel failover-timeout \(masterName) 5000"]
        if let masterPassword { lines.append("sentinel auth-pass \(masterName) \(masterPassword)") }
        if let sentinelPassword { lines += ["requirepass \(sentinelPassword)", "sentinel sentinel-pass \(sentinelPassword)"] }
        try launch(port: port, config: "sentinel-\(port).conf", lines: lines, sentinel: true)
    }

    /// The config lines a process listens with: `port P`, or for TLS `port 0`, `tls-port P`,
    /// the server certificate and the CA (no client certificate asked for), and TLS for its own
    /// connections to the others (a replica's to its master, a sentinel's to every node).
    private func listening(on port: Int) -> [String] {
        guard let tls else { return ["port \(port)"] }
        return ["port 0", "tls-port \(port)", "tls-cert-file \(tls.serverCertificate)", "tls-key-file \(tls.serverKey)",
                "tls-ca-cert-file \(tls.caFile)", "tls-auth-clients no", "tls-replication yes"]
    }

    /// Writes the config file, starts the process and waits until it accepts connections.
    private func launch(port: Int, config: String, lines: [String], sentinel: Bool) throws {
        let file = directory.appendingPathComponent(config)
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        let child = try spawnChild(try RedisServer.redisServerPath(), [file.path] + (sentinel ? ["--sentinel"] : []))
        RedisServer.spawned.withLock { _ = $0.insert(child) }
        lock.withLock { pids[port] = child }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if RedisServer.canConnect(port: port) { return }
            var status: Int32 = 0
            if waitpid(child, &status, WNOHANG) == child {
                lock.withLock { _ = pids.removeValue(forKey: port) }
                RedisServer.spawned.withLock { _ = $0.remove(child) }
                throw TestSetupError("redis-server \(sentinel ? "--sentinel " : "")on port \(port) exited at start\n\(logTail())")
            }
            usleep(20_000)
        }
        throw TestSetupError("redis-server \(sentinel ? "--sentinel " : "")did not start on port \(port)\n\(logTail())")
    }

    /// Sends `signal` to the process on `port`, reaps it and waits until its port is closed.
    /// - Returns: false when no process of this deployment listens there.
    private func signalAndWait(port: Int, _ signal: Int32) -> Bool {
        guard let pid = lock.withLock({ pids.removeValue(forKey: port) }) else { return false }
        RedisServer.stop(pid: pid, port: port, signal)
        return true
    }

    private func killAll() {
        for port in lock.withLock({ Array(pids.keys) }) { _ = signalAndWait(port: port, SIGKILL) }
    }
}

/// One command to a Redis server or sentinel on 127.0.0.1, over a socket of its own: what
/// fixtures use to look at servers without the client under test.
public enum LoopbackRedis {
    /// Connects to 127.0.0.1:`port`, authenticates with `password` when given, sends `words`
    /// and returns the reply (an error reply as `.error`), off the cooperative pool.
    /// - Throws: `TestSetupError` when it cannot connect, the AUTH is refused, or no complete
    ///   reply comes within `timeout` seconds.
    public static func call(port: Int, password: String? = nil, _ words: [String], timeout: Double = 10) async throws -> RESPValue {
        try await offPool { try callBlocking(port: port, password: password, words, timeout: timeout) }
    }

    static func callBlocking(port: Int, password: String?, _ words: [String], timeout: Double) throws -> RESPValue {
        inProcessSetUp()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSetupError("socket failed (errno \(errno))") }
        defer { close(fd) }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestSetupError("cannot connect to 127.0.0.1:\(port) (errno \(errno))") }
        var reader = Reader(fd: fd, port: port)
        if let password {
            try send(fd, ["AUTH", password], port: port)
            if case .error(let text) = try reader.reply() {
                throw TestSetupError("127.0.0.1:\(port) refused the password (\(text.split(separator: " ").first ?? ""))")
            }
        }
        try send(fd, words, port: port)
        return try reader.reply()
    }

    /// The same over TLS, for a server listening on a TLS port only: `openssl s_client`
    /// trusting `tls.caFile` (the certificate chain is verified), fed the commands (AUTH when
    /// `password` is given, then `words`) from a file of the caller's only (0600: a password is
    /// never on a command line). Its output (the server's bytes, nothing else with `-quiet`)
    /// goes to a file, read as RESP like the plaintext replies until the replies are complete;
    /// then s_client is killed (a sentinel knows no QUIT to end the connection with).
    /// - Throws: `TestSetupError` when it cannot connect or verify the server, the AUTH is
    ///   refused, or no complete reply comes within `timeout` seconds.
    public static func call(port: Int, password: String? = nil, tls: TLSMaterial, _ words: [String],
                            timeout: Double = 10) async throws -> RESPValue {
        inProcessSetUp()
        let openssl = try TLSMaterial.opensslPath()
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("iq-tls-probe-\(port)-\(UUID().uuidString.prefix(8))").path
        let request = base + ".in"
        let output = base + ".out"
        defer {
            try? FileManager.default.removeItem(atPath: request)
            try? FileManager.default.removeItem(atPath: output)
        }
        let commands = (password.map { [["AUTH", $0]] } ?? []) + [words]
        guard FileManager.default.createFile(atPath: request, contents: Data(commands.flatMap(encoded)),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw TestSetupError("cannot write \(request)")
        }
        // With `-quiet` (and so `-ign_eof`) s_client sends the file, then writes what the
        // server sends until it is killed or the server closes the connection.
        let script = "exec \"$0\" s_client -connect \"127.0.0.1:$1\" -CAfile \"$2\" -verify_return_error -quiet -nocommands < \"$3\" > \"$4\""
        let client = try SpawnedProcess("/bin/sh", ["-c", script, openssl, "\(port)", tls.caFile, request, output],
                                        environment: ProcessInfo.processInfo.environment)
        let outcome: Result<RESPValue, any Error>
        do {
            outcome = .success(try await replies(from: client, in: output, port: port, authenticating: password != nil, timeout: timeout))
        } catch {
            outcome = .failure(error)
        }
        client.send(SIGKILL)
        _ = try? await client.waitForExit(timeout: 10)
        return try outcome.get()
    }

    /// Reads the output file of `client` until the AUTH reply (when `authenticating`) and one
    /// more reply are complete; that reply.
    private static func replies(from client: SpawnedProcess, in output: String, port: Int, authenticating: Bool,
                                timeout: Double) async throws -> RESPValue {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while true {
            // Checked before reading: the output of a client that had ended is complete.
            let ended = client.termination
            let received = (try? Data(contentsOf: URL(fileURLWithPath: output))).map { [UInt8]($0) } ?? []
            var reader = Reader(bytes: received, port: port)
            do {
                if authenticating, case .error(let text) = try reader.reply() {
                    throw TestSetupError("127.0.0.1:\(port) refused the password (\(text.split(separator: " ").first ?? ""))")
                }
                return try reader.reply()
            } catch is IncompleteReply {
                if let ended {
                    let why = client.stderr.split(separator: "\n")
                        .filter { !$0.hasPrefix("depth=") && !$0.hasPrefix("verify return") && !$0.hasPrefix("Can't use SSL_get_servername") }
                        .suffix(3).joined(separator: " | ")
                    throw TestSetupError("no \(received.isEmpty ? "" : "complete ")TLS reply from 127.0.0.1:\(port) (openssl s_client \(ended): \(why))")
                }
            }
            guard ContinuousClock.now < deadline else {
                throw TestSetupError("no complete TLS reply from 127.0.0.1:\(port) within \(timeout) s (\(received.count) bytes)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// What the reader of bytes already received throws when a reply goes on past them.
    private struct IncompleteReply: Error {}

    /// `words` as a RESP array of bulk strings.
    private static func encoded(_ words: [String]) -> [UInt8] {
        var bytes = Array("*\(words.count)\r\n".utf8)
        for word in words { bytes += Array("$\(word.utf8.count)\r\n".utf8) + Array(word.utf8) + [13, 10] }
        return bytes
    }

    private static func send(_ fd: Int32, _ words: [String], port: Int) throws {
        let bytes = encoded(words)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw TestSetupError("cannot write to 127.0.0.1:\(port) (errno \(errno))") }
            sent += count
        }
    }

    /// A RESP2 reply parser over a blocking socket, or over bytes already received (`fd` -1).
    private struct Reader {
        let fd: Int32
        let port: Int
        var buffer: [UInt8] = []
        var position = 0

        init(fd: Int32, port: Int) {
            self.fd = fd
            self.port = port
        }

        init(bytes: [UInt8], port: Int) {
            fd = -1
            self.port = port
            buffer = bytes
        }

        mutating func fill() throws {
            guard fd >= 0 else { throw IncompleteReply() }
            var chunk = [UInt8](repeating: 0, count: 16_384)
            while true {
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else {
                    throw TestSetupError(count == 0 ? "127.0.0.1:\(port) closed the connection"
                                                    : "no reply from 127.0.0.1:\(port) (errno \(errno))")
                }
                if position > 0 {
                    buffer.removeFirst(position)
                    position = 0
                }
                buffer += chunk[0..<count]
                return
            }
        }

        mutating func line() throws -> String {
            while true {
                if let end = buffer[position...].firstIndex(of: 10), end > position, buffer[end - 1] == 13 {
                    let text = String(decoding: buffer[position..<(end - 1)], as: UTF8.self)
                    position = end + 1
                    return text
                }
                try fill()
            }
        }

        mutating func bytes(_ count: Int) throws -> [UInt8] {
            while buffer.count - position < count + 2 { try fill() }
            let value = Array(buffer[position..<(position + count)])
            position += count + 2
            return value
        }

        mutating func reply() throws -> RESPValue {
            let header = try line()
            guard let kind = header.first else { throw TestSetupError("empty reply line from 127.0.0.1:\(port)") }
            let rest = String(header.dropFirst())
            switch kind {
            case "+": return .status(rest)
            case "-": return .error(rest)
            case ":": return .integer(Int64(rest) ?? 0)
            case "$":
                guard let count = Int(rest) else { break }
                return count < 0 ? .null : .bulk(try bytes(count))
            case "*":
                guard let count = Int(rest) else { break }
                if count < 0 { return .null }
                var items: [RESPValue] = []
                for _ in 0..<count { items.append(try reply()) }
                return .array(items)
            default: break
            }
            throw TestSetupError("unexpected reply line from 127.0.0.1:\(port): \(header)")
        }
    }
}
