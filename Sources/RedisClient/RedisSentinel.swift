import DedicatedThreads
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A master found through Redis Sentinel (`redis+sentinel://host1:port1,host2:port2/<name>`):
/// every connection asks the sentinels where the master is when it connects, checks with
/// `ROLE` that the server it reached is that master, and goes back to the sentinels when the
/// master moves (`+switch-master`), or when it finds itself on a replica (`READONLY`, or
/// `UNBLOCKED` for a blocking wait the demotion ended).
public struct RedisSentinel: Sendable, Equatable {
    /// The sentinels, tried in order (their address and TLS; their own password, if any,
    /// in `password`).
    public var sentinels: [RedisEndpoint]
    /// The master's name in the sentinels' configuration.
    public var masterName: String
    /// The sentinels' own password (`requirepass` of the sentinels), when they have one:
    /// the URL's credentials are the master's.
    public var password: String?

    public init(sentinels: [RedisEndpoint], masterName: String, password: String? = nil) {
        self.sentinels = sentinels
        self.masterName = masterName
        self.password = password
    }

    /// A sentinel's endpoint with the sentinels' credentials.
    func sentinel(_ index: Int) -> RedisEndpoint {
        var endpoint = sentinels[index % sentinels.count]
        endpoint.user = nil
        endpoint.password = password
        endpoint.database = 0
        return endpoint
    }
}

extension RedisConfiguration {
    /// The sentinels and master name of a `redis+sentinel://[user:password@]host1:port1[,host2:port2…]/<master>[/db]`
    /// URL (`rediss+sentinel://` over TLS, to the sentinels and the master), or nil for any
    /// other scheme. The credentials and the database are the master's.
    /// - Throws: `RedisError` `.invalidURL` naming what is wrong (never the password).
    static func parseSentinel(url: String) throws(RedisError) -> (endpoint: RedisEndpoint, sentinel: RedisSentinel)? {
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        let scheme = parts.count == 2 ? parts[0].lowercased() : ""
        guard scheme == "redis+sentinel" || scheme == "rediss+sentinel" else { return nil }
        let nodeScheme = scheme == "rediss+sentinel" ? "rediss" : "redis"
        func invalid(_ why: String) -> RedisError {
            RedisError(.invalidURL, "\(why) (expected \(scheme)://[user:password@]host1:port1[,host2:port2…]/<master name>[/db])")
        }
        var rest = String(parts[1])
        if rest.contains("?") { throw invalid("no query options are taken") }
        guard let slash = rest.firstIndex(of: "/") else { throw invalid("no master name") }
        let path = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
        rest = String(rest[..<slash])
        guard let name = path.first, !name.isEmpty else { throw invalid("no master name") }
        var database = 0
        if path.count > 1 {
            guard path.count == 2, let number = Int(path[1]), number >= 0 else { throw invalid("database must be a number") }
            database = number
        }
        var credentials = ""
        var authority = rest
        if let at = rest.lastIndex(of: "@") {
            credentials = String(rest[...at])
            authority = String(rest[rest.index(after: at)...])
        }
        let hosts = authority.split(separator: ",", omittingEmptySubsequences: false)
        guard !hosts.isEmpty, !hosts.contains(where: \.isEmpty) else { throw invalid("no sentinel") }
        var sentinels: [RedisEndpoint] = []
        for host in hosts {
            do {
                var sentinel = try RedisEndpoint(url: "\(nodeScheme)://\(host.contains(":") ? String(host) : "\(host):26379")")
                sentinel.database = 0
                sentinels.append(sentinel)
            } catch {
                let why = error.message.split(separator: " (expected").first.map(String.init) ?? error.message
                throw invalid("sentinel \(host): \(why)")
            }
        }
        // The master's credentials, database and TLS; its address comes from the sentinels.
        var master = try RedisEndpoint(url: "\(nodeScheme)://\(credentials)\(hosts[0])")
        master.database = database
        return (master, RedisSentinel(sentinels: sentinels, masterName: String(name)))
    }
}

extension RedisSocket {
    /// A connection to `endpoint`, or, for a Sentinel configuration, to the master the
    /// sentinels name now (with `endpoint`'s credentials and database), checked with ROLE.
    /// - Returns: the socket and the address it reached.
    /// - Throws: `.connectionFailed` when no sentinel answers or the master they name is a
    ///   replica (retried by the caller); `.misconfigured` when no sentinel knows the name.
    static func open(_ configuration: RedisConfiguration, endpoint: RedisEndpoint) throws(RedisError) -> (RedisSocket, RedisEndpoint.Address) {
        guard let sentinel = configuration.sentinel else {
            let socket = try RedisSocket(endpoint: endpoint, connectTimeout: configuration.connectTimeout,
                                         clientName: configuration.clientName)
            return (socket, endpoint.address)
        }
        let master = try masterAddress(sentinel, connectTimeout: configuration.connectTimeout)
        var target = endpoint
        target.address = master
        let socket = try RedisSocket(endpoint: target, connectTimeout: configuration.connectTimeout,
                                     clientName: configuration.clientName)
        let role = try socket.call(["ROLE"], deadline: .now + configuration.commandTimeout)
        guard role.array?.first?.string == "master" else {
            throw RedisError(.connectionFailed, "\(target) is not the master of \(sentinel.masterName) (ROLE says \(role.array?.first?.string ?? "nothing")): the sentinels have not switched yet")
        }
        SentinelMaster.found(sentinel.masterName, at: master)
        return (socket, master)
    }

    /// Where the sentinels say the master is: the first sentinel that answers decides.
    static func masterAddress(_ sentinel: RedisSentinel, connectTimeout: Duration) throws(RedisError) -> RedisEndpoint.Address {
        var failures: [String] = []
        for index in sentinel.sentinels.indices {
            let endpoint = sentinel.sentinel(index)
            let reply: RESPValue
            do {
                let socket = try RedisSocket(endpoint: endpoint, connectTimeout: connectTimeout, clientName: nil)
                reply = try socket.call(["SENTINEL", "get-master-addr-by-name", sentinel.masterName],
                                        deadline: .now + connectTimeout + .seconds(1))
            } catch where error.isSetupError {
                throw error
            } catch {
                failures.append("\(endpoint): \(error.message)")
                continue
            }
            if case .null = reply {
                throw RedisError(.misconfigured, "the sentinel \(endpoint) knows no master named \(sentinel.masterName)")
            }
            guard let parts = reply.array, parts.count == 2, let host = parts[0].string, let port = parts[1].string.flatMap({ Int($0) }) else {
                failures.append("\(endpoint): unexpected answer \(reply)")
                continue
            }
            return .tcp(host: host, port: port)
        }
        throw RedisError(.connectionFailed, "no sentinel answered for \(sentinel.masterName): \(failures.joined(separator: "; "))")
    }

    /// Sends one command and reads its reply; an error reply is thrown as `.server`.
    func call(_ words: [String], deadline: ContinuousClock.Instant) throws(RedisError) -> RESPValue {
        try append(words.map(\.redisBytes))
        try flush(deadline: deadline)
        let reply = try readReply(deadline: deadline, interruptFD: nil)
        if case .error(let text) = reply { throw RedisError(.server, text) }
        return reply
    }
}

/// Follows the sentinels' announcements for one master on a thread of its own, while its
/// owner's `run()` runs: `+switch-master` calls `moved` with the new address; a failover
/// that was aborted (`-failover-abort-*`) changes nothing and is only logged.
struct SentinelWatch {
    let sentinel: RedisSentinel
    let configuration: RedisConfiguration
    let logger: Logger

    /// Runs until cancelled.
    func run(moved: @escaping @Sendable (RedisEndpoint.Address) -> Void) async throws {
        let stop = WakePipe()
        let watch = self
        try await withTaskCancellationHandler {
            try await DedicatedThread.run(name: "iq-sentinel") { watch.follow(stop: stop, moved: moved) }
        } onCancel: {
            stop.wake()
        }
    }

    private func follow(stop: WakePipe, moved: (RedisEndpoint.Address) -> Void) {
        var index = 0
        var attempt = 0
        while true {
            do {
                let socket = try RedisSocket(endpoint: sentinel.sentinel(index), connectTimeout: configuration.connectTimeout,
                                             clientName: nil)
                try socket.append(["SUBSCRIBE", "+switch-master", "-failover-abort-no-good-slave", "-failover-abort-not-elected"].map(\.redisBytes))
                try socket.flush(deadline: .now + configuration.commandTimeout)
                attempt = 0
                while true {
                    // No deadline of our own: a sentinel that goes away ends the read, and the
                    // owner's stop wakes it.
                    let reply = try socket.readReply(deadline: .now + .seconds(3600), interruptFD: stop.readFD)
                    guard let parts = reply.array, parts.count == 3, parts[0].string == "message",
                          let channel = parts[1].string, let text = parts[2].string else { continue }
                    let words = text.split(separator: " ").map(String.init)
                    guard words.first == sentinel.masterName else { continue }
                    if channel == "+switch-master", words.count == 5, let port = Int(words[4]) {
                        logger.info("Redis master moved (Sentinel)", metadata: ["master": "\(sentinel.masterName)",
                                                                                "address": "\(words[3]):\(port)"])
                        SentinelMaster.found(sentinel.masterName, at: .tcp(host: words[3], port: port), announced: true)
                        moved(.tcp(host: words[3], port: port))
                    } else {
                        logger.warning("Sentinel failover aborted", metadata: ["master": "\(sentinel.masterName)",
                                                                                "event": "\(channel)"])
                    }
                }
            } catch where error.kind == .cancelled {
                return
            } catch {
                index += 1
                attempt += 1
                if stop.wait(timeout: configuration.backoff(attempt: attempt)) { return }
            }
        }
    }
}

extension DedicatedThread {
    /// Runs `body` on a thread of its own until it returns; for a Sentinel configuration,
    /// follows the sentinels' announcements beside it and calls `moved` when the master moves.
    static func runFollowingSentinels(name: String, configuration: RedisConfiguration, logger: Logger,
                                      moved: @escaping @Sendable (RedisEndpoint.Address) -> Void,
                                      _ body: @escaping @Sendable () -> Void) async throws {
        guard let sentinel = configuration.sentinel else { return try await run(name: name, body) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await SentinelWatch(sentinel: sentinel, configuration: configuration, logger: logger).run(moved: moved)
            }
            try await run(name: name, body)
            group.cancelAll()
        }
    }
}

/// What this process knows of a Sentinel master: where its connections found it, and when
/// it last saw the master move (a `+switch-master`, or a connection that found it elsewhere).
public struct SentinelMaster: Sendable, Equatable {
    /// The master's name in the sentinels' configuration.
    public let name: String
    /// `host:port` of the master the connections use now.
    public var address: String
    /// When this process last saw the master move, ms since the epoch; nil when it has not.
    public var lastFailoverAt: Int64?

    /// What this process knows of `name`, nil before any connection asked the sentinels.
    public static func known(_ name: String) -> SentinelMaster? { masters.withLock { $0[name] } }

    private static let masters = Mutex<[String: SentinelMaster]>([:])

    /// A connection found the master at `address`; a move when it was known elsewhere.
    static func found(_ name: String, at address: RedisEndpoint.Address, announced: Bool = false) {
        guard case .tcp(let host, let port) = address else { return }
        let text = (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        masters.withLock { masters in
            if var known = masters[name] {
                guard known.address != text else { return }
                known.address = text
                known.lastFailoverAt = wallClockMilliseconds()
                masters[name] = known
            } else {
                masters[name] = SentinelMaster(name: name, address: text, lastFailoverAt: announced ? wallClockMilliseconds() : nil)
            }
        }
    }

    private static func wallClockMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}

/// The thread-driven state machine of a connection or a subscriber.
protocol ThreadEngine: AnyObject, Sendable {
    var configuration: RedisConfiguration { get }
    var logger: Logger { get }
    func claimRun() -> Bool
    func run()
    func close()
    func masterMoved(to address: RedisEndpoint.Address)
}

extension ConnectionEngine: ThreadEngine {}
extension SubscriberEngine: ThreadEngine {}

/// The `run()` of a client over `engine`: once only; the engine's thread (and, with Sentinel,
/// the sentinels' announcements) while the caller awaits; cancelling closes the engine.
func runEngine(_ engine: some ThreadEngine, threadName: String, what: String) async throws {
    guard engine.claimRun() else { throw RedisError(.closed, "the \(what) has already run (run() is called once)") }
    do {
        try await withTaskCancellationHandler {
            try await DedicatedThread.runFollowingSentinels(name: threadName, configuration: engine.configuration,
                                                           logger: engine.logger, moved: { engine.masterMoved(to: $0) }) {
                engine.run()
            }
        } onCancel: {
            engine.close()
        }
    } catch {
        engine.close()
        throw error
    }
}
