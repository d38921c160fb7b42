import Logging

/// The cluster's slot map: the master of each hash slot, as `CLUSTER SLOTS` last told (and
/// `MOVED` replies corrected since). Kept by `RedisClusterRouter` behind its lock.
struct RedisClusterSlotMap {
    /// Owner of each slot: an index into `nodes`, or -1 when unknown.
    var owners = [Int16](repeating: -1, count: RedisClusterSlot.count)
    /// Every node address ("host:port") seen as a slot owner.
    var nodes: [String] = []
    var nodeIndex: [String: Int16] = [:]
    var mapped = false

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

    /// The node that owns `slot`, or nil when unknown.
    func owner(ofSlot slot: Int) -> String? {
        owners[slot] >= 0 ? nodes[Int(owners[slot])] : nil
    }

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

    /// The slot ranges and their masters from a `CLUSTER SLOTS` reply.
    /// - Throws: `.protocolError` when the reply has another shape; `.server` for an error reply.
    static func parse(_ reply: RESPValue, queriedHost: String) throws(RedisError) -> [(ClosedRange<Int>, String)] {
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
}

extension RedisClusterRouter {
    /// Reads the map before the first command, retrying until the reconnect deadline.
    func ensureMapped() async throws {
        if state.withLock({ $0.map.mapped }) { return }
        let deadline = ContinuousClock.now + configuration.reconnectDeadline
        var attempt = 0
        while true {
            if state.withLock({ $0.closed }) { throw RedisError(.closed, "the connection is closed") }
            let failure = await refresh(after: nil)  // nil as well when another task was refreshing
            if state.withLock({ $0.map.mapped }) { return }
            if let failure, failure.isSetupError { throw failure }
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

    /// Asks for a refresh of the map in the background (`refreshWhenAsked`): at once, or
    /// 100 ms after the last refresh began; requests made while one is queued share it.
    func scheduleRefresh() {
        let now = ContinuousClock.now
        let queued = state.withLock { state in
            defer { state.refreshQueued = true }
            return state.refreshQueued
        }
        if !queued { refreshRequests.continuation.yield(now) }
    }

    /// The router's own refreshes, a child of its `run()`: the map is brought up to date even
    /// when no command follows, and the reply that met MOVED does not wait for it.
    func refreshWhenAsked() async {
        for await asked in refreshRequests.stream {
            let last = state.withLock { $0.lastRefreshStart }
            if let last {
                let delay = .milliseconds(100) - (ContinuousClock.now - last)
                if delay > .zero { try? await Task.sleep(for: delay) }
            }
            if Task.isCancelled { return }
            state.withLock { $0.refreshQueued = false }
            await refresh(after: asked)
        }
    }

    /// Reads `CLUSTER SLOTS` from the known masters, then the seeds, until one answers.
    /// - Parameter since: skip the read if a refresh began at or after this instant (once
    ///   any running one has finished); nil: just wait for a running one, else read.
    /// - Returns: nil on success (or when another task's refresh was waited for), else the
    ///   last error.
    @discardableResult
    func refresh(after since: ContinuousClock.Instant?) async -> RedisError? {
        enum Plan { case wait, done, read([String]) }
        var candidates: [String] = []
        while true {
            let plan: Plan = state.withLock { state in
                if state.refreshing { return .wait }
                if let since, let started = state.lastRefreshStart, started >= since { return .done }
                state.refreshing = true
                state.lastRefreshStart = .now
                var candidates = state.map.masters
                for seed in configuration.clusterSeeds.map(Self.address(of:)) where !candidates.contains(seed) {
                    candidates.append(seed)
                }
                for node in state.map.nodes where !candidates.contains(node) { candidates.append(node) }
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
            do {
                let reply = try await withRunning([probe]) {
                    try await probe.send(RedisCommand("CLUSTER", "SLOTS"), timeout: configuration.commandTimeout)
                }
                let host = String(node[..<node.lastIndex(of: ":")!])
                let ranges = try RedisClusterSlotMap.parse(reply, queriedHost: host)
                install(ranges)
                return nil
            } catch let error as RedisError {
                lastError = error
                if error.isSetupError { break }
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
        state.withLock { $0.map.install(ranges) }
    }
}
