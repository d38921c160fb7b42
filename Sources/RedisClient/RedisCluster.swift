import Logging
import Synchronization

/// The cluster side of `RedisConnection`: a slot map read with `CLUSTER SLOTS`, one
/// single-node `RedisConnection` per master (made on first use), and the routing of every
/// command to the master of its key's slot.
///
/// A pipeline whose commands live on several masters is split per master, the parts sent
/// concurrently and the replies put back in order. `MOVED` updates the map for that slot,
/// schedules a full refresh (at most one start every 100 ms) and repeats the command on the new
/// master; `ASK` repeats it once on the named node after `ASKING`, leaving the map alone;
/// `TRYAGAIN` and `CLUSTERDOWN` are retried with short pauses within the command's
/// timeout. A master that cannot be reached makes the client read the map from another
/// node and, when the slot has moved (a failover), send the command there.
final class RedisClusterRouter: Sendable, CustomStringConvertible {
    let configuration: RedisConfiguration
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        /// Owner of each slot: an index into `nodes`, or -1 when unknown.
        var owners = [Int16](repeating: -1, count: RedisClusterSlot.count)
        /// Every node address ("host:port") seen as a slot owner.
        var nodes: [String] = []
        var nodeIndex: [String: Int16] = [:]
        var mapped = false
        var connections: [String: RedisConnection] = [:]
        var refreshing = false
        var refreshQueued = false
        var lastRefreshStart: ContinuousClock.Instant?
        var closed = false

        mutating func index(of node: String) -> Int16 {
            if let index = nodeIndex[node] { return index }
            nodes.append(node)
            let index = Int16(nodes.count - 1)
            nodeIndex[node] = index
            return index
        }

        /// Masters: nodes that own at least one slot, in the order first seen. Kept up to
        /// date by `assign` and `install`: keyless commands read it on every call.
        private(set) var masters: [String] = []

        /// Records one slot's owner (after MOVED).
        mutating func assign(_ slot: Int, to node: String) {
            owners[slot] = index(of: node)
            if !masters.contains(node) { masters.append(node) }
        }

        /// Replaces the whole map (after CLUSTER SLOTS).
        mutating func install(_ ranges: [(ClosedRange<Int>, String)]) {
            var fresh = [Int16](repeating: -1, count: RedisClusterSlot.count)
            var owning = Set<Int16>()
            for (range, node) in ranges {
                let index = index(of: node)
                owning.insert(index)
                for slot in range { fresh[slot] = index }
            }
            owners = fresh
            masters = owning.sorted().map { nodes[Int($0)] }
            mapped = true
        }
    }

    init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    var description: String { configuration.endpointDescription }

    func close() {
        let connections = state.withLock { state in
            state.closed = true
            defer { state.connections = [:] }
            return Array(state.connections.values)
        }
        for connection in connections { connection.close() }
    }

    // MARK: - Routing

    /// One command (or one part of a split command) bound for a node.
    private struct Unit {
        enum Target { case slot(Int), anyNode, node(String) }
        let command: RedisCommand
        let target: Target
    }

    func submit(_ commands: [RedisCommand], timeout: Duration) async throws -> [RESPValue] {
        try await ensureMapped()
        var units: [Unit] = []
        var results = [RESPValue?](repeating: nil, count: commands.count)
        var parts = [[Int]](repeating: [], count: commands.count)  // unit indices per command
        var merges = [ClusterMerge?](repeating: nil, count: commands.count)
        var positions: [Int: [[Int]]] = [:]  // MGET split: original key indices per part
        for (index, command) in commands.enumerated() {
            func add(_ unit: Unit) {
                parts[index].append(units.count)
                units.append(unit)
            }
            switch ClusterRoute.of(command) {
            case .anyNode:
                add(Unit(command: command, target: .anyNode))
            case .keys(let keys):
                let slots = Set(keys.map(RedisClusterSlot.slot(of:)))
                if slots.count > 1 {
                    results[index] = .error("CROSSSLOT \(command.name) touches keys of \(slots.count) slots "
                                            + "(\(slots.sorted().map(String.init).joined(separator: ", "))); "
                                            + "give them one hash tag")
                } else {
                    add(Unit(command: command, target: .slot(slots.first!)))
                }
            case .splittable(let keys, let merge):
                var groups: [(slot: Int, keys: [Int])] = []
                for (keyIndex, key) in keys.enumerated() {
                    let slot = RedisClusterSlot.slot(of: key)
                    if let group = groups.firstIndex(where: { $0.slot == slot }) {
                        groups[group].keys.append(keyIndex)
                    } else {
                        groups.append((slot, [keyIndex]))
                    }
                }
                if groups.count == 1 {
                    add(Unit(command: command, target: .slot(groups[0].slot)))
                } else {
                    let verb = command.name.redisBytes
                    for group in groups {
                        add(Unit(command: RedisCommand(arguments: [verb] + group.keys.map { keys[$0] }),
                                 target: .slot(group.slot)))
                    }
                    merges[index] = merge
                    positions[index] = groups.map(\.keys)
                }
            case .everyMaster(let merge):
                let masters = state.withLock { $0.masters }
                for master in masters { add(Unit(command: command, target: .node(master))) }
                merges[index] = merge
                if masters.isEmpty { results[index] = .error("CLUSTERDOWN no master is known") }
            case .refused(let text):
                results[index] = .error(text)
            }
        }

        let replies = try await execute(units, timeout: timeout)
        for index in commands.indices where results[index] == nil {
            let values = parts[index].map { replies[$0] }
            results[index] = Self.merge(values, merges[index], positions: positions[index])
        }
        return results.map { $0! }
    }

    /// Sends units to their nodes (one pipeline per node, concurrently), then follows
    /// redirections one command at a time.
    private func execute(_ units: [Unit], timeout: Duration) async throws -> [RESPValue] {
        if units.isEmpty { return [] }
        var replies = [RESPValue](repeating: .null, count: units.count)
        var pending = Array(units.indices)
        var refreshed = false
        while true {
            let groups = group(pending.map { ($0, units[$0].target) })
            var unreachable: [Int] = []
            var failure: (any Error)?
            if groups.count == 1 {
                let (node, members) = groups[0]
                do {
                    let values = try await connection(node).pipeline(members.map { units[$0].command }, timeout: timeout)
                    for (member, value) in zip(members, values) { replies[member] = value }
                } catch let error as RedisError where error.kind == .connectionFailed {
                    unreachable = members
                    failure = error
                } catch let error as RedisError where error.kind == .connectionLost {
                    scheduleRefresh()
                    throw error
                }
            } else {
                try await withThrowingTaskGroup(of: ([Int], Result<[RESPValue], any Error>).self) { group in
                    for (node, members) in groups {
                        let connection = try connection(node)
                        let commands = members.map { units[$0].command }
                        // The child only calls `send(part:)`: written inline, with its do/catch, it
                        // crashed release builds (see that function).
                        group.addTask { await Self.send(part: members, commands, on: connection, timeout: timeout) }
                    }
                    for try await (members, result) in group {
                        switch result {
                        case .success(let values):
                            for (member, value) in zip(members, values) { replies[member] = value }
                        case .failure(let error as RedisError) where error.kind == .connectionFailed:
                            unreachable += members
                            failure = failure ?? error
                        case .failure(let error):
                            failure = error
                        }
                    }
                }
                if let failure, unreachable.isEmpty || (failure as? RedisError)?.kind != .connectionFailed {
                    if (failure as? RedisError)?.kind == .connectionLost { scheduleRefresh() }
                    throw failure
                }
            }
            if let failure {
                // Nothing was sent to that node: read the map from another one; when the slot
                // has a new master (a failover), send there once.
                guard !refreshed else { throw failure }
                refreshed = true
                let before = unreachable.map { nodeName(for: units[$0].target) }
                await refresh(after: .now)
                let after = unreachable.map { nodeName(for: units[$0].target) }
                guard before != after else { throw failure }
                pending = unreachable.sorted()
                continue
            }
            break
        }
        for index in units.indices {
            if case .error(let text) = replies[index], Self.isRedirection(text) {
                replies[index] = try await followRedirections(units[index], reply: replies[index], timeout: timeout)
            }
        }
        return replies
    }

    /// Sends one node's part of a split pipeline, for a child task of `execute`.
    ///
    /// A function of its own because of a Swift 6.3.1 optimizer defect: a task-group child
    /// that awaits inside `do` and returns a captured value from both `do` and `catch` is
    /// miscompiled with `-O` (wrong replies, or SIGSEGV in `Zip2Sequence.Iterator.next()`
    /// when they are read). Reproducer: ops/compiler-defects/taskgroup-child-catch;
    /// docs/CLUSTER.md tells the story. Keep the do/catch out of the closure.
    @inline(never)
    private static func send(part members: [Int], _ commands: [RedisCommand], on connection: RedisConnection,
                             timeout: Duration) async -> ([Int], Result<[RESPValue], any Error>) {
        do {
            return (members, .success(try await connection.pipeline(commands, timeout: timeout)))
        } catch {
            return (members, .failure(error))
        }
    }

    private static func isRedirection(_ text: String) -> Bool {
        text.hasPrefix("MOVED ") || text.hasPrefix("ASK ") || text.hasPrefix("TRYAGAIN") || text.hasPrefix("CLUSTERDOWN")
    }

    /// Repeats one command after MOVED, ASK, TRYAGAIN or CLUSTERDOWN until it gets another
    /// reply, a pause would pass `timeout`, or 16 redirections (a map in flux) have been met.
    private func followRedirections(_ unit: Unit, reply first: RESPValue, timeout: Duration) async throws -> RESPValue {
        let deadline = ContinuousClock.now + timeout
        var reply = first
        var hops = 0
        var pauses = 0
        while case .error(let text) = reply, Self.isRedirection(text), hops < 16 {
            hops += 1
            let words = text.split(separator: " ")
            if words[0] == "MOVED" || words[0] == "ASK" {
                guard words.count >= 3, let slot = Int(words[1]), (0..<RedisClusterSlot.count).contains(slot),
                      let node = Self.node(String(words[2]), default: nodeName(for: unit.target)) else { return reply }
                if words[0] == "MOVED" {
                    state.withLock { $0.assign(slot, to: node) }
                    scheduleRefresh()
                    logger.debug("slot moved", metadata: ["slot": "\(slot)", "node": "\(node)"])
                    reply = try await connection(node).pipeline([unit.command], timeout: timeout)[0]
                } else {
                    let replies = try await connection(node).pipeline([RedisCommand("ASKING"), unit.command], timeout: timeout)
                    reply = replies[1]
                }
            } else {
                // TRYAGAIN (a multi-key command during a migration) or CLUSTERDOWN (no
                // quorum, a failover in progress): pause, then ask the slot's master again.
                let pause = Duration.milliseconds(25 << min(pauses, 3))
                pauses += 1
                guard ContinuousClock.now + pause < deadline else { return reply }
                do {
                    try await Task.sleep(for: pause)
                } catch {
                    throw RedisError(.cancelled, "cancelled while waiting for the cluster")
                }
                if words[0] == "CLUSTERDOWN" { await refresh(after: .now) }
                reply = try await connection(nodeName(for: unit.target)).pipeline([unit.command], timeout: timeout)[0]
            }
        }
        return reply
    }

    /// "host:port" from a MOVED/ASK address; an empty host means the node that answered.
    private static func node(_ address: String, default fallback: String) -> String? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            return nil
        }
        let host = String(address[..<colon])
        if host.isEmpty || host == "?" {
            guard let fallbackColon = fallback.lastIndex(of: ":") else { return nil }
            return "\(fallback[..<fallbackColon]):\(port)"
        }
        return "\(host):\(port)"
    }

    /// Units grouped by node, each group in the order given.
    private func group(_ targets: [(Int, Unit.Target)]) -> [(String, [Int])] {
        state.withLock { state in
            var order: [String] = []
            var members: [String: [Int]] = [:]
            // Keyless commands go where the request's first keyed command goes, so that a
            // request on one slot stays one round trip to one node.
            var anyNode: String?
            for (_, target) in targets {
                if case .slot(let slot) = target, state.owners[slot] >= 0 {
                    anyNode = state.nodes[Int(state.owners[slot])]
                    break
                }
            }
            let fallback = anyNode ?? state.masters.first ?? Self.address(of: configuration.endpoint)
            for (index, target) in targets {
                let node: String
                switch target {
                case .node(let name): node = name
                case .anyNode: node = fallback
                case .slot(let slot): node = state.owners[slot] >= 0 ? state.nodes[Int(state.owners[slot])] : fallback
                }
                if members[node] == nil { order.append(node) }
                members[node, default: []].append(index)
            }
            return order.map { ($0, members[$0]!) }
        }
    }

    private func nodeName(for target: Unit.Target) -> String {
        group([(0, target)])[0].0
    }

    private static func merge(_ values: [RESPValue], _ merge: ClusterMerge?, positions: [[Int]]?) -> RESPValue {
        guard let merge else { return values.first ?? .null }
        if let error = values.first(where: { if case .error = $0 { true } else { false } }) { return error }
        switch merge {
        case .first:
            return values.first ?? .null
        case .concatenate:
            return .array(values.flatMap { $0.array ?? [] })
        case .sum:
            return .integer(values.reduce(0) { $0 + ($1.int ?? 0) })
        case .valuesInKeyOrder:
            guard let positions else { return .array(values.flatMap { $0.array ?? [] }) }
            var ordered = [RESPValue](repeating: .null, count: positions.reduce(0) { $0 + $1.count })
            for (part, keys) in zip(values, positions) {
                for (value, position) in zip(part.array ?? [], keys) { ordered[position] = value }
            }
            return .array(ordered)
        }
    }

    // MARK: - Connections

    /// The single-node connection to `node` ("host:port"), made on first use.
    private func connection(_ node: String) throws(RedisError) -> RedisConnection {
        let made: RedisConnection? = state.withLock { state in
            if state.closed { return nil }
            if let existing = state.connections[node] { return existing }
            let connection = RedisConnection(configuration: nodeConfiguration(node), logger: logger)
            state.connections[node] = connection
            return connection
        }
        guard let made else { throw RedisError(.closed, "the connection is closed") }
        return made
    }

    /// This configuration pointed at one node, in single-node mode.
    private func nodeConfiguration(_ node: String) -> RedisConfiguration {
        var copy = configuration
        copy.clusterSeeds = []
        let colon = node.lastIndex(of: ":")!
        copy.endpoint.address = .tcp(host: String(node[..<colon]), port: Int(node[node.index(after: colon)...]) ?? 6379)
        return copy
    }

    static func address(of endpoint: RedisEndpoint) -> String {
        if case .tcp(let host, let port) = endpoint.address { return "\(host):\(port)" }
        return "?:0"
    }

    // MARK: - The slot map

    /// Reads the map before the first command, retrying until the reconnect deadline.
    private func ensureMapped() async throws {
        if state.withLock({ $0.mapped }) { return }
        let deadline = ContinuousClock.now + configuration.reconnectDeadline
        var attempt = 0
        while true {
            if state.withLock({ $0.closed }) { throw RedisError(.closed, "the connection is closed") }
            let failure = await refresh(after: nil)  // nil as well when another task was refreshing
            if state.withLock({ $0.mapped }) { return }
            if let failure, failure.kind == .authentication || failure.kind == .misconfigured { throw failure }
            if attempt == 0 {
                logger.warning("Redis Cluster unreachable, retrying", metadata: ["redis.endpoint": "\(description)",
                                                                              "error": "\(failure?.message ?? "no slot map")"])
            }
            let delay = configuration.backoff(attempt: attempt)
            attempt += 1
            guard ContinuousClock.now + delay < deadline else {
                throw failure ?? RedisError(.connectionFailed, "cannot read the slot map of \(description)")
            }
            do { try await Task.sleep(for: delay) } catch { throw RedisError(.cancelled, "cancelled while waiting for Redis") }
        }
    }

    /// Refreshes the map in the background: at once, or 100 ms after the last refresh began;
    /// requests made while one is queued share it.
    private func scheduleRefresh() {
        let now = ContinuousClock.now
        let delay: Duration? = state.withLock { state in
            if state.refreshQueued { return nil }
            state.refreshQueued = true
            guard let last = state.lastRefreshStart else { return .zero }
            return max(.zero, .milliseconds(100) - (now - last))
        }
        guard let delay else { return }
        Task {
            if delay > .zero { try? await Task.sleep(for: delay) }
            state.withLock { $0.refreshQueued = false }
            await refresh(after: now)
        }
    }

    /// Reads `CLUSTER SLOTS` from the known masters, then the seeds, until one answers.
    /// - Parameter since: skip the read if a refresh began at or after this instant (once
    ///   any running one has finished); nil: just wait for a running one, else read.
    /// - Returns: nil on success (or when another task's refresh was waited for), else the
    ///   last error.
    @discardableResult
    private func refresh(after since: ContinuousClock.Instant?) async -> RedisError? {
        enum Plan { case wait, done, read([String]) }
        var candidates: [String] = []
        while true {
            let plan: Plan = state.withLock { state in
                if state.refreshing { return .wait }
                if let since, let started = state.lastRefreshStart, started >= since { return .done }
                state.refreshing = true
                state.lastRefreshStart = .now
                var candidates = state.masters
                for seed in configuration.clusterSeeds.map(Self.address(of:)) where !candidates.contains(seed) {
                    candidates.append(seed)
                }
                for node in state.nodes where !candidates.contains(node) { candidates.append(node) }
                return .read(candidates)
            }
            switch plan {
            case .read(let nodes):
                candidates = nodes
            case .done:
                return nil
            case .wait:
                // Another task is reading the map: wait for it to finish.
                while state.withLock({ $0.refreshing }), !Task.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
                if since == nil || Task.isCancelled { return nil }
                continue
            }
            break
        }
        var lastError = RedisError(.connectionFailed, "no cluster node could be reached")
        defer { state.withLock { $0.refreshing = false } }
        for node in candidates {
            // A short-lived connection that tries once: a node that is down must not hold the
            // refresh for the reconnect deadline.
            var probeConfiguration = nodeConfiguration(node)
            probeConfiguration.reconnectDeadline = .zero
            probeConfiguration.clientName = nil
            let probe = RedisConnection(configuration: probeConfiguration, logger: logger)
            defer { probe.close() }
            do {
                let reply = try await probe.send(RedisCommand("CLUSTER", "SLOTS"), timeout: configuration.commandTimeout)
                let host = String(node[..<node.lastIndex(of: ":")!])
                let ranges = try Self.parseSlots(reply, queriedHost: host)
                install(ranges)
                return nil
            } catch let error as RedisError {
                lastError = error
                if error.kind == .authentication { break }
                if error.kind == .server, error.message.contains("cluster support disabled") {
                    lastError = RedisError(.misconfigured, "\(node) is not a Redis Cluster node (its cluster support is disabled): "
                                                          + "use redis://\(node) for a single server")
                    break
                }
            } catch {
                lastError = RedisError(.protocolError, "\(error)")
            }
        }
        logger.debug("cannot read the cluster's slot map", metadata: ["error": "\(lastError.message)"])
        return lastError
    }

    private func install(_ ranges: [(ClosedRange<Int>, String)]) {
        state.withLock { $0.install(ranges) }
    }

    /// The slot ranges and their masters from a `CLUSTER SLOTS` reply.
    /// - Throws: `.protocolError` when the reply has another shape; `.server` for an error reply.
    static func parseSlots(_ reply: RESPValue, queriedHost: String) throws(RedisError) -> [(ClosedRange<Int>, String)] {
        if case .error(let text) = reply { throw RedisError(.server, text) }
        guard let entries = reply.array else { throw RedisError(.protocolError, "CLUSTER SLOTS gave no array") }
        var ranges: [(ClosedRange<Int>, String)] = []
        for entry in entries {
            guard let fields = entry.array, fields.count >= 3, let start = fields[0].int, let end = fields[1].int,
                  0 <= start, start <= end, end < RedisClusterSlot.count,
                  let master = fields[2].array, master.count >= 2, let port = master[1].int else {
                throw RedisError(.protocolError, "unexpected CLUSTER SLOTS entry \(entry)")
            }
            var host = master[0].string ?? ""
            if host.isEmpty || host == "?" { host = queriedHost }
            ranges.append((Int(start)...Int(end), "\(host):\(port)"))
        }
        if ranges.isEmpty { throw RedisError(.server, "CLUSTERDOWN the cluster has no slots assigned") }
        return ranges
    }

    // MARK: - Whole-keyspace reads and tests

    /// Every key matching `pattern`, by SCAN on every master.
    func scanKeys(matching pattern: String, count: Int) async throws -> [[UInt8]] {
        try await ensureMapped()
        var keys: [[UInt8]] = []
        for master in state.withLock({ $0.masters }) {
            keys += try await RedisConnection.scan(try connection(master), matching: pattern, count: count)
        }
        return keys
    }

    /// The node the map says owns `slot`, or nil.
    func owner(ofSlot slot: Int) -> String? {
        state.withLock { $0.owners[slot] >= 0 ? $0.nodes[Int($0.owners[slot])] : nil }
    }

    /// The masters the map knows.
    func masters() async throws -> [String] {
        try await ensureMapped()
        return state.withLock { $0.masters }
    }
}

extension RedisConnection {
    /// Every key matching the glob `pattern`, read with SCAN (on every master of a cluster):
    /// unlike KEYS it never blocks Redis for long. Keys written meanwhile may be missed.
    /// - Throws: `RedisError`.
    public func scanKeys(matching pattern: String, count: Int = 1000) async throws -> [[UInt8]] {
        if let cluster { return try await cluster.scanKeys(matching: pattern, count: count) }
        return try await Self.scan(self, matching: pattern, count: count)
    }

    static func scan(_ connection: RedisConnection, matching pattern: String, count: Int) async throws -> [[UInt8]] {
        var keys: [[UInt8]] = []
        var cursor = "0"
        repeat {
            let reply = try await connection.send("SCAN", cursor, "MATCH", pattern, "COUNT", count)
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw RedisError(.protocolError, "unexpected SCAN reply")
            }
            keys += parts[1].array?.compactMap(\.bytes) ?? []
            cursor = next
        } while cursor != "0"
        return keys
    }

    /// Whether this connection routes by slot to a Redis Cluster.
    public var isCluster: Bool { cluster != nil }

    /// In cluster mode, the master ("host:port") the slot map names for `slot` (nil when
    /// unknown or not a cluster). For tests and diagnostics.
    package func clusterOwner(ofSlot slot: Int) -> String? { cluster?.owner(ofSlot: slot) }

    /// In cluster mode, the masters ("host:port") of the slot map, read first if needed.
    package func clusterMasters() async throws -> [String] { try await cluster?.masters() ?? [] }
}

extension RedisCommand {
    /// The command's name (its first word, or EVALSHA for a script call), for messages.
    var name: String {
        switch body {
        case .arguments(let words): words.first.map { String(decoding: $0, as: UTF8.self).uppercased() } ?? ""
        case .script: "EVALSHA"
        }
    }
}

extension RedisClusterRouter {
    /// The nodes a cluster subscriber may use, the one it is connected to first, then the
    /// other masters of `CLUSTER SLOTS`, then the seeds; nil when the node does not answer.
    /// Runs on the subscriber's thread, before it subscribes.
    static func pubSubNodes(asking socket: RedisSocket, current: RedisEndpoint,
                            configuration: RedisConfiguration) -> [RedisEndpoint]? {
        guard case .tcp(let currentHost, _) = current.address else { return nil }
        do {
            try socket.append(["CLUSTER", "SLOTS"].map(\.redisBytes))
            let deadline = ContinuousClock.now + configuration.commandTimeout
            try socket.flush(deadline: deadline)
            let ranges = try parseSlots(try socket.readReply(deadline: deadline, interruptFD: nil), queriedHost: currentHost)
            var nodes = [current]
            var seen: Set<String> = [address(of: current)]
            for endpoint in ranges.map({ endpoint(configuration, $0.1) }) + configuration.clusterSeeds
            where seen.insert(address(of: endpoint)).inserted {
                nodes.append(endpoint)
            }
            return nodes
        } catch {
            return nil
        }
    }

    /// The configuration's endpoint (credentials) at `node` ("host:port").
    private static func endpoint(_ configuration: RedisConfiguration, _ node: String) -> RedisEndpoint {
        var endpoint = configuration.endpoint
        let colon = node.lastIndex(of: ":")!
        endpoint.address = .tcp(host: String(node[..<colon]), port: Int(node[node.index(after: colon)...]) ?? 6379)
        return endpoint
    }
}
