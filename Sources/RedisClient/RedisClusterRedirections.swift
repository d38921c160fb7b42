import Logging

/// Redirections: a node's `MOVED` / `ASK` (the slot lives elsewhere, for good or during a
/// migration) and `TRYAGAIN` / `CLUSTERDOWN` (wait and ask again) replies, followed one
/// command at a time after the pipeline's first round (`RedisClusterRouter.execute`).
extension RedisClusterRouter {
    static func isRedirection(_ text: String) -> Bool {
        text.hasPrefix("MOVED ") || text.hasPrefix("ASK ") || text.hasPrefix("TRYAGAIN") || text.hasPrefix("CLUSTERDOWN")
    }

    /// Repeats one command after MOVED, ASK, TRYAGAIN or CLUSTERDOWN until it gets another
    /// reply, a pause would pass `timeout`, or 16 redirections (a map in flux) have been met.
    func followRedirections(_ unit: Unit, reply first: RESPValue, timeout: Duration) async throws -> RESPValue {
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
                    state.withLock { $0.map.assign(slot, to: node) }
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
}
