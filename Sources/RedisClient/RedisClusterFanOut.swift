/// Fan-out: commands that concern every master (KEYS, DBSIZE, SCRIPT LOAD...) or whose keys
/// span slots (MGET, DEL...) go out in parts (`ClusterRoute`, RedisClusterCommands.swift);
/// their replies become one here. Whole-keyspace reads visit every master.
extension RedisClusterRouter {
    /// One reply from the replies of a command's parts; an error reply wins.
    static func merge(_ values: [RESPValue], _ merge: ClusterMerge?, positions: [[Int]]?) -> RESPValue {
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

    /// Every key matching `pattern`, by SCAN on every master.
    func scanKeys(matching pattern: String, count: Int) async throws -> [[UInt8]] {
        try await ensureMapped()
        var keys: [[UInt8]] = []
        for master in state.withLock({ $0.map.masters }) {
            keys += try await RedisConnection.scan(try connection(master), matching: pattern, count: count)
        }
        return keys
    }

    /// The node the map says owns `slot`, or nil.
    func owner(ofSlot slot: Int) -> String? {
        state.withLock { $0.map.owner(ofSlot: slot) }
    }

    /// The masters the map knows.
    func masters() async throws -> [String] {
        try await ensureMapped()
        return state.withLock { $0.map.masters }
    }
}
