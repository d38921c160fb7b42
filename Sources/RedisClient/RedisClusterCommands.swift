/// Where a command goes in a Redis Cluster, read from its words: the keys it touches (by a
/// small table of key positions), or that it has none, or that it concerns every master.
enum ClusterRoute {
    /// Keyed: these keys (all of them hashed to find the slot).
    case keys([[UInt8]])
    /// No key: any node can answer (PING, TIME, INFO, PUBLISH...).
    case anyNode
    /// The whole keyspace or every node's state: sent to every master, replies merged.
    case everyMaster(ClusterMerge)
    /// A multi-key command Redis can run per slot (MGET, DEL...): split when its keys span
    /// slots, replies merged.
    case splittable([[UInt8]], ClusterMerge)
    /// Cannot be routed in a cluster: answered with this error.
    case refused(String)
}

/// How the replies of a command sent in parts (per slot or per master) become one.
enum ClusterMerge {
    /// The first reply (SCRIPT LOAD: every master gives the same SHA); an error wins.
    case first
    /// Arrays concatenated (KEYS).
    case concatenate
    /// Integers added (DEL, EXISTS, DBSIZE).
    case sum
    /// MGET: values put back in the order of the keys asked for.
    case valuesInKeyOrder
}

extension ClusterRoute {
    /// The route of one command.
    static func of(_ command: RedisCommand) -> ClusterRoute {
        switch command.body {
        case .script(_, let keys, _):
            return keys.isEmpty ? .anyNode : .keys(keys)
        case .arguments(let words):
            return of(words: words)
        }
    }

    static func of(words: [[UInt8]]) -> ClusterRoute {
        guard let first = words.first else { return .anyNode }
        let name = String(decoding: first, as: UTF8.self).uppercased()
        let count = words.count
        func sub() -> String { count > 1 ? String(decoding: words[1], as: UTF8.self).uppercased() : "" }
        func keys(_ range: Range<Int>) -> ClusterRoute {
            let range = range.clamped(to: 1..<max(1, count))
            return range.isEmpty ? .anyNode : .keys(Array(words[range]))
        }
        func numberedKeys(countAt index: Int, prefix: [[UInt8]] = []) -> ClusterRoute {
            guard index < count, let n = Int(String(decoding: words[index], as: UTF8.self)), n >= 0,
                  index + 1 + n <= count else { return prefix.isEmpty ? .anyNode : .keys(prefix) }
            let found = prefix + Array(words[(index + 1)..<(index + 1 + n)])
            return found.isEmpty ? .anyNode : .keys(found)
        }
        switch name {
        case "PING", "ECHO", "TIME", "INFO", "CLIENT", "COMMAND", "CLUSTER", "PUBLISH", "ROLE", "LASTSAVE",
             "READONLY", "READWRITE", "HELLO", "LATENCY", "SLOWLOG", "DEBUG", "RANDOMKEY", "PUBSUB", "WAIT",
             "ACL", "AUTH", "QUIT", "SAVE", "BGSAVE", "BGREWRITEAOF", "LOLWUT", "MONITOR", "FUNCTION":
            return .anyNode
        case "CONFIG":
            return sub() == "GET" ? .anyNode : .everyMaster(.first)
        case "SCRIPT":
            switch sub() {
            case "LOAD", "FLUSH": return .everyMaster(.first)
            default: return .anyNode  // EXISTS, KILL: ask one node
            }
        case "FLUSHALL", "FLUSHDB": return .everyMaster(.first)
        case "KEYS": return .everyMaster(.concatenate)
        case "DBSIZE": return .everyMaster(.sum)
        case "SCAN":
            return .refused("ERR SCAN sees one node of a cluster; use scanKeys(matching:) of RedisClusterClient, which scans every master")
        case "SELECT", "MOVE", "SWAPDB":
            return .refused("ERR \(name) is not available in Redis Cluster (it has database 0 only)")
        case "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH":
            return .refused("ERR \(name): transactions are not supported by the cluster client; use a script")
        case "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SSUBSCRIBE", "SUNSUBSCRIBE":
            return .refused("ERR \(name) needs its own connection: use RedisSubscriber")
        case "MGET": return count > 1 ? .splittable(Array(words[1...]), .valuesInKeyOrder) : .anyNode
        case "DEL", "UNLINK", "EXISTS", "TOUCH": return count > 1 ? .splittable(Array(words[1...]), .sum) : .anyNode
        case "SINTER", "SUNION", "SDIFF", "PFCOUNT", "PFMERGE", "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE":
            return keys(1..<count)
        case "BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX":
            return keys(1..<(count - 1))
        case "RENAME", "RENAMENX", "RPOPLPUSH", "BRPOPLPUSH", "SMOVE", "LMOVE", "BLMOVE", "COPY", "ZRANGESTORE",
             "GEOSEARCHSTORE":
            return keys(1..<3)
        case "MSET", "MSETNX":
            return count > 1 ? .keys(stride(from: 1, to: count, by: 2).map { words[$0] }) : .anyNode
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            return numberedKeys(countAt: 2)
        case "ZUNION", "ZINTER", "ZDIFF", "ZINTERCARD", "SINTERCARD", "LMPOP", "ZMPOP":
            return numberedKeys(countAt: 1)
        case "BLMPOP", "BZMPOP":
            return numberedKeys(countAt: 2)
        case "ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE":
            return numberedKeys(countAt: 2, prefix: count > 1 ? [words[1]] : [])
        case "OBJECT", "MEMORY", "XINFO":
            return count > 2 ? .keys([words[2]]) : .anyNode
        default:
            // The usual case: the first argument is the key. A guess that is wrong for some
            // command outside this table is corrected by the server's MOVED reply.
            return count > 1 ? .keys([words[1]]) : .anyNode
        }
    }
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
