import DedicatedThreads
import Logging
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a subscription delivers.
public enum SubscriptionEvent: Sendable, Equatable {
    /// A message published on a subscribed channel (or one matching a pattern).
    case message(channel: String, payload: [UInt8])
    /// The connection was re-established and the subscription renewed: messages published
    /// meanwhile were missed, so re-read any state you track.
    case resubscribed
}

/// A pub/sub connection, shared by any number of listeners, on an OS thread of its own that
/// lives while `run()` runs (a `Service`, like `RedisConnection`).
///
/// `subscribe` returns once Redis has confirmed the subscription, so a caller can subscribe
/// first and then read state without missing an event in between. After a lost connection
/// the subscriber reconnects with backoff, renews every subscription and yields
/// `.resubscribed` to each listener. An idle connection is checked with PING.
public final class RedisSubscriber: ClosableService {
    private let engine: SubscriberEngine

    /// Creates a subscriber; it connects once `run()` runs and something is subscribed.
    public init(configuration: RedisConfiguration, logger: Logger = Logger(label: "imagequeue.redis.pubsub")) {
        engine = SubscriberEngine(configuration: configuration, logger: logger)
    }

    deinit { engine.close() }

    /// Runs the subscriber's thread until the task is cancelled or `close()` is called; every
    /// stream finishes then. Call it once. Graceful shutdown is left to its users, as for
    /// `RedisConnection.run()`.
    /// - Throws: `RedisError` `.closed` when it already ran; `DedicatedThread.StartFailure`.
    public func run() async throws {
        try await runEngine(engine, threadName: "iq-pubsub", what: "subscriber")
    }

    /// Subscribes to channels (or, with `patterns: true`, glob patterns) and returns the
    /// stream of their messages. Ending the iteration unsubscribes.
    /// - Throws: `RedisError` when Redis cannot be reached within the reconnect deadline.
    public func subscribe(_ channels: [String], patterns: Bool = false) async throws -> AsyncStream<SubscriptionEvent> {
        let (stream, continuation) = AsyncStream<SubscriptionEvent>.makeStream(bufferingPolicy: .unbounded)
        let listener = engine.addListener(channels: channels, patterns: patterns, continuation: continuation)
        continuation.onTermination = { [engine] _ in engine.removeListener(listener) }
        do {
            try await withCheckedThrowingContinuation { (confirmed: CheckedContinuation<Void, any Error>) in
                engine.requestConfirmation(for: listener) { result in confirmed.resume(with: result) }
            }
        } catch {
            engine.removeListener(listener)
            throw error
        }
        return stream
    }

    /// Closes the connection; every stream finishes.
    public func close() { engine.close() }
}

final class SubscriberEngine: @unchecked Sendable {
    // Safe to share: `state` is behind a Mutex; `socket` and the ping bookkeeping are
    // touched only by the dedicated thread that runs `run()`.
    struct Listener {
        let id: UInt64
        let names: [String]
        let patterns: Bool
        let continuation: AsyncStream<SubscriptionEvent>.Continuation
    }

    private struct State {
        var listeners: [UInt64: Listener] = [:]
        var nextID: UInt64 = 0
        /// Names (channel or "p:" + pattern) the server has confirmed on this connection.
        var confirmed: Set<String> = []
        /// Names asked for but not confirmed yet.
        var requested: Set<String> = []
        var waiting: [(listener: UInt64, done: @Sendable (Result<Void, RedisError>) -> Void)] = []
        var closed = false
        var running = false
        var connectedOnce = false
        /// After a reconnect: tell listeners once every renewed subscription is confirmed.
        var announceResubscribed = false
        /// Where the sentinels announced the master moved, until the thread acts on it.
        var movedTo: RedisEndpoint.Address?
    }

    let configuration: RedisConfiguration
    let logger: Logger
    private let state = Mutex(State())
    private let pipe = WakePipe()
    private var socket: RedisSocket?
    private let pingInterval: Duration = .seconds(5)
    /// Where to connect: the one server, or a cluster's nodes (any node delivers every
    /// PUBLISH); the next one is tried when a connect fails. Touched by the thread only.
    private var endpoints: [RedisEndpoint]
    private var endpointIndex = 0
    /// Where `socket` is connected (for Sentinel: the master it found).
    private var address: RedisEndpoint.Address?

    init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        endpoints = configuration.isCluster ? configuration.clusterSeeds : [configuration.endpoint]
    }

    func addListener(channels: [String], patterns: Bool, continuation: AsyncStream<SubscriptionEvent>.Continuation) -> UInt64 {
        state.withLock { state in
            state.nextID += 1
            state.listeners[state.nextID] = Listener(id: state.nextID, names: channels, patterns: patterns,
                                                     continuation: continuation)
            return state.nextID
        }
    }

    func requestConfirmation(for listener: UInt64, done: @escaping @Sendable (Result<Void, RedisError>) -> Void) {
        let closed = state.withLock { state in
            if state.closed { return true }
            state.waiting.append((listener, done))
            return false
        }
        if closed { done(.failure(RedisError(.closed, "the subscriber is closed"))) } else { pipe.wake() }
    }

    func removeListener(_ id: UInt64) {
        let removed = state.withLock { $0.listeners.removeValue(forKey: id) }
        if removed != nil { pipe.wake() }
    }

    /// Marks the engine as run; false when it ran (or runs) already.
    func claimRun() -> Bool {
        state.withLock { state in
            defer { state.running = true }
            return !state.running
        }
    }

    /// Stops the thread: every stream finishes and pending subscriptions fail (at once, even
    /// when no thread runs).
    func close() {
        let (listeners, waiting) = state.withLock { state in
            state.closed = true
            defer { state.waiting = [] }
            return (Array(state.listeners.values), state.waiting)
        }
        for listener in listeners { listener.continuation.finish() }
        for waiter in waiting { waiter.done(.failure(RedisError(.closed, "the subscriber is closed"))) }
        pipe.wake()
    }

    /// The sentinels announced that the master moved: subscribe there.
    func masterMoved(to address: RedisEndpoint.Address) {
        state.withLock { $0.movedTo = address }
        pipe.wake()
    }

    private static func key(_ name: String, pattern: Bool) -> String { pattern ? "p:" + name : "c:" + name }

    // MARK: - The thread

    func run() {
        var lastTraffic = ContinuousClock.now
        var pingOutstanding = false
        var attempt = 0
        var unreachableSince: ContinuousClock.Instant?
        while !state.withLock({ $0.closed }) {
            if socket == nil {
                let hasWork = state.withLock { !$0.listeners.isEmpty || !$0.waiting.isEmpty }
                if !hasWork {
                    pipe.wait(timeout: nil)
                    pipe.drain()
                    continue
                }
                do {
                    let (fresh, reached) = try RedisSocket.open(configuration, endpoint: endpoints[endpointIndex])
                    socket = fresh
                    address = reached
                    state.withLock { $0.movedTo = nil }
                    if configuration.isCluster, let socket {
                        endpoints = RedisClusterRouter.pubSubNodes(asking: socket, current: endpoints[endpointIndex],
                                                                   configuration: configuration) ?? endpoints
                        endpointIndex = 0
                    }
                    attempt = 0
                    unreachableSince = nil
                    lastTraffic = .now
                    pingOutstanding = false
                    let renewed = state.withLock { state in
                        state.confirmed = []
                        state.requested = []
                        state.announceResubscribed = state.connectedOnce
                        defer { state.connectedOnce = true }
                        return state.connectedOnce
                    }
                    if renewed { logger.info("pub/sub reconnected", metadata: ["redis.endpoint": "\(configuration.endpointDescription)"]) }
                    try synchronize()
                } catch {
                    socket = nil
                    endpointIndex = (endpointIndex + 1) % endpoints.count
                    let since = unreachableSince ?? .now
                    unreachableSince = since
                    failWaitersIfOverdue(error: error, unreachableSince: since)
                    let delay = configuration.backoff(attempt: attempt)
                    attempt += 1
                    pipe.wait(timeout: delay)
                    pipe.drain()
                    continue
                }
            }
            guard let socket else { continue }
            do {
                var fds = [pollfd(fd: socket.fileDescriptor, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: pipe.readFD, events: Int16(POLLIN), revents: 0)]
                let result = poll(&fds, 2, Int32(pingInterval.wholeMilliseconds))
                if result < 0, errno != EINTR { throw RedisError(.connectionLost, "poll failed") }
                if fds[1].revents != 0 {
                    pipe.drain()
                    if let moved = state.withLock({ state in defer { state.movedTo = nil }; return state.movedTo }), moved != address {
                        throw RedisError(.connectionLost, "the Redis master moved (Sentinel failover)")
                    }
                    try synchronize()
                }
                if fds[0].revents != 0 {
                    try socket.readAvailable()
                    lastTraffic = .now
                    pingOutstanding = false
                    while let reply = try socket.bufferedReply() { handle(reply) }
                    completeConfirmed()
                }
                if ContinuousClock.now - lastTraffic >= pingInterval {
                    if pingOutstanding { throw RedisError(.timeout, "pub/sub connection stopped answering PING") }
                    try socket.append(["PING"].map(\.redisBytes))
                    try socket.flush(deadline: .now + configuration.commandTimeout)
                    pingOutstanding = true
                    lastTraffic = .now
                }
            } catch let error as RedisError {
                logger.warning("pub/sub connection lost, reconnecting", metadata: ["error": "\(error.message)"])
                self.socket = nil
            } catch {
                self.socket = nil
            }
        }
        socket = nil
        let waiting = state.withLock { state in
            defer { state.waiting = [] }
            return state.waiting
        }
        for waiter in waiting { waiter.done(.failure(RedisError(.closed, "the subscriber is closed"))) }
    }

    /// Sends SUBSCRIBE/UNSUBSCRIBE so the server's set matches what listeners want.
    private func synchronize() throws(RedisError) {
        guard let socket else { return }
        let (subscribe, unsubscribe) = state.withLock { state -> ([(String, Bool)], [(String, Bool)]) in
            var wanted: [String: (String, Bool)] = [:]
            for listener in state.listeners.values {
                for name in listener.names { wanted[Self.key(name, pattern: listener.patterns)] = (name, listener.patterns) }
            }
            let have = state.confirmed.union(state.requested)
            let add = wanted.filter { !have.contains($0.key) }
            let drop = have.subtracting(wanted.keys).map { key -> (String, Bool) in
                (String(key.dropFirst(2)), key.hasPrefix("p:"))
            }
            state.requested.formUnion(add.keys)
            state.confirmed.subtract(drop.map { Self.key($0.0, pattern: $0.1) })
            state.requested.subtract(drop.map { Self.key($0.0, pattern: $0.1) })
            return (Array(add.values), drop)
        }
        for (pattern, names) in [(false, subscribe.filter { !$0.1 }), (true, subscribe.filter { $0.1 })] where !names.isEmpty {
            try socket.append([pattern ? "PSUBSCRIBE" : "SUBSCRIBE"].map(\.redisBytes) + names.map { $0.0.redisBytes })
        }
        for (pattern, names) in [(false, unsubscribe.filter { !$0.1 }), (true, unsubscribe.filter { $0.1 })] where !names.isEmpty {
            try socket.append([pattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE"].map(\.redisBytes) + names.map { $0.0.redisBytes })
        }
        if !subscribe.isEmpty || !unsubscribe.isEmpty {
            try socket.flush(deadline: .now + configuration.commandTimeout)
        }
        completeConfirmed()
    }

    private func handle(_ reply: RESPValue) {
        guard let parts = reply.array, let kind = parts.first?.string else { return }
        switch kind {
        case "message" where parts.count == 3:
            deliver(channel: parts[1].string ?? "", payload: parts[2].bytes ?? [], matching: { name, pattern in
                !pattern && name == parts[1].string
            })
        case "pmessage" where parts.count == 4:
            let pattern = parts[1].string ?? ""
            deliver(channel: parts[2].string ?? "", payload: parts[3].bytes ?? [], matching: { name, isPattern in
                isPattern && name == pattern
            })
        case "subscribe", "psubscribe":
            if parts.count >= 2, let name = parts[1].string {
                let key = Self.key(name, pattern: kind == "psubscribe")
                state.withLock { state in
                    if state.requested.remove(key) != nil { state.confirmed.insert(key) }
                }
            }
        default:
            break  // unsubscribe confirmations, pong
        }
    }

    private func deliver(channel: String, payload: [UInt8], matching: (String, Bool) -> Bool) {
        let targets = state.withLock { state in
            state.listeners.values.filter { listener in listener.names.contains { matching($0, listener.patterns) } }
        }
        for listener in targets { listener.continuation.yield(.message(channel: channel, payload: payload)) }
    }

    /// Resumes every waiter whose channels are all confirmed, and after a reconnect tells
    /// every listener once the renewed subscriptions are all confirmed (not merely sent).
    private func completeConfirmed() {
        let announce = state.withLock { state -> [Listener] in
            guard state.announceResubscribed, state.requested.isEmpty else { return [] }
            state.announceResubscribed = false
            return Array(state.listeners.values)
        }
        for listener in announce { listener.continuation.yield(.resubscribed) }
        let ready = state.withLock { state -> [@Sendable (Result<Void, RedisError>) -> Void] in
            var ready: [@Sendable (Result<Void, RedisError>) -> Void] = []
            state.waiting.removeAll { waiter in
                guard let listener = state.listeners[waiter.listener] else {
                    ready.append(waiter.done)
                    return true
                }
                let done = listener.names.allSatisfy { state.confirmed.contains(Self.key($0, pattern: listener.patterns)) }
                if done { ready.append(waiter.done) }
                return done
            }
            return ready
        }
        for done in ready { done(.success(())) }
    }

    /// While Redis is down, subscribe calls wait up to the reconnect deadline (measured from
    /// the first failed attempt), then fail.
    private func failWaitersIfOverdue(error: RedisError, unreachableSince: ContinuousClock.Instant) {
        guard ContinuousClock.now - unreachableSince >= configuration.reconnectDeadline else { return }
        let waiting = state.withLock { state in
            defer { state.waiting = [] }
            return state.waiting
        }
        for waiter in waiting { waiter.done(.failure(error)) }
    }
}
