import Logging
import Synchronization

/// The engine of `RedisClusterClient`: a slot map read with `CLUSTER SLOTS`
/// (RedisClusterSlotMap.swift), one single-node `RedisConnection` per master (made on first
/// use), and the routing of every command to the master of its key's slot.
///
/// Its node connections and its background refreshes of the map are child tasks of `run()`.
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
    let logger: Logger
    let state = Mutex(State())
    /// The node connections, run by `run()`.
    let nodes = ChildClients()
    /// Refreshes asked for (`scheduleRefresh`), by when they were asked; at most one waits.
    let refreshRequests: (stream: AsyncStream<ContinuousClock.Instant>, continuation: AsyncStream<ContinuousClock.Instant>.Continuation)
        = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))

    struct State {
        var map = RedisClusterSlotMap()
        var connections: [String: RedisConnection] = [:]
        var refreshing = false
        var refreshQueued = false
        var lastRefreshStart: ContinuousClock.Instant?
        var closed = false
        var running = false
    }

    init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    var description: String { configuration.endpointDescription }

    /// Runs the node connections and the map's background refreshes until cancelled or closed.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.nodes.run() }
            group.addTask { await self.refreshWhenAsked() }
        }
    }

    /// Marks the router as run; false when it ran (or runs) already.
    func claimRun() -> Bool {
        state.withLock { state in
            defer { state.running = true }
            return !state.running
        }
    }

    func close() {
        state.withLock { state in
            state.closed = true
            state.connections = [:]
        }
        refreshRequests.continuation.finish()
        nodes.finish()
    }

    // MARK: - Routing

    /// One command (or one part of a split command) bound for a node.
    struct Unit {
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
                let masters = state.withLock { $0.map.masters }
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

    /// Units grouped by node, each group in the order given.
    private func group(_ targets: [(Int, Unit.Target)]) -> [(String, [Int])] {
        state.withLock { state in
            var order: [String] = []
            var members: [String: [Int]] = [:]
            // Keyless commands go where the request's first keyed command goes, so that a
            // request on one slot stays one round trip to one node.
            var anyNode: String?
            for (_, target) in targets {
                if case .slot(let slot) = target, let owner = state.map.owner(ofSlot: slot) {
                    anyNode = owner
                    break
                }
            }
            let fallback = anyNode ?? state.map.masters.first ?? Self.address(of: configuration.endpoint)
            for (index, target) in targets {
                let node: String
                switch target {
                case .node(let name): node = name
                case .anyNode: node = fallback
                case .slot(let slot): node = state.map.owner(ofSlot: slot) ?? fallback
                }
                if members[node] == nil { order.append(node) }
                members[node, default: []].append(index)
            }
            return order.map { ($0, members[$0]!) }
        }
    }

    func nodeName(for target: Unit.Target) -> String {
        group([(0, target)])[0].0
    }


    // MARK: - Connections

    /// The single-node connection to `node` ("host:port"), made on first use.
    func connection(_ node: String) throws(RedisError) -> RedisConnection {
        let made: RedisConnection? = state.withLock { state in
            if state.closed { return nil }
            if let existing = state.connections[node] { return existing }
            let connection = RedisConnection(configuration: nodeConfiguration(node), logger: logger)
            state.connections[node] = connection
            nodes.start(connection)
            return connection
        }
        guard let made else { throw RedisError(.closed, "the connection is closed") }
        return made
    }

    /// This configuration pointed at one node, in single-node mode.
    func nodeConfiguration(_ node: String) -> RedisConfiguration {
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
}
