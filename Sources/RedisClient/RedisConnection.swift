import DedicatedThreads
import Logging
import Synchronization

/// A connection to one Redis server (`redis://…`), safe to use from any task, driven by an
/// OS thread of its own that lives while `run()` runs. `RedisClusterClient` uses one per
/// cluster master.
///
/// Like postgres-nio's `PostgresClient`, it is a `Service`: run it in a task group or a
/// `ServiceGroup` (or `withRunning` for a one-shot call). Commands sent before `run()` starts
/// wait for it; cancelling `run()` (or `close()`) fails queued and later ones with `.closed`.
///
/// Commands sent while others are in flight are pipelined together automatically: the
/// thread writes everything queued in one go, then reads the replies in order. When the
/// connection breaks, commands in flight fail with `.connectionLost` (they may have run);
/// queued ones wait up to `reconnectDeadline` while the thread reconnects with capped
/// exponential backoff and jitter. Give blocking commands (BLPOP…) their own connection.
public final class RedisConnection: RedisClientProtocol {
    private let engine: ConnectionEngine

    /// Makes a connection; it connects once `run()` runs and a command is sent.
    public init(configuration: RedisConfiguration, logger: Logger = Logger(label: "imagequeue.redis")) {
        precondition(!configuration.isCluster, "a redis+cluster:// configuration needs RedisClusterClient (see makeRedisClient)")
        engine = ConnectionEngine(configuration: configuration, logger: logger)
    }

    deinit { engine.close() }

    /// Runs the connection's thread until the task is cancelled or `close()` is called. Call
    /// it once. It ignores graceful shutdown, as `PostgresClient.run()` does: the services
    /// that use the connection shut down first (wrap it in `cancelOnGracefulShutdown` to
    /// give it a place in a `ServiceGroup`'s order).
    /// - Throws: `RedisError` `.closed` when it already ran; `DedicatedThread.StartFailure`.
    public func run() async throws {
        try await runEngine(engine, threadName: "iq-redis", what: "connection")
    }

    /// The endpoint, with the password masked.
    public var endpointDescription: String { engine.configuration.endpointDescription }

    /// The endpoint this connection was configured with.
    var endpoint: RedisEndpoint { engine.configuration.endpoint }

    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration?) async throws -> RESPValue {
        try await submit([command], timeout: timeout)[0].orThrow()
    }

    public func pipeline(_ commands: [RedisCommand], timeout: Duration?) async throws -> [RESPValue] {
        if commands.isEmpty { return [] }
        return try await submit(commands, timeout: timeout)
    }

    public func scanKeys(matching pattern: String, count: Int) async throws -> [[UInt8]] {
        try await Self.scan(self, matching: pattern, count: count)
    }

    /// Every key matching `pattern` on one server, by SCAN.
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

    /// Ends `run()`; queued and later commands fail with `.closed`.
    public func close() { engine.close() }

    private func submit(_ commands: [RedisCommand], timeout: Duration?) async throws -> [RESPValue] {
        let id = engine.makeRequestID()
        let timeout = timeout ?? engine.configuration.commandTimeout
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[RESPValue], any Error>) in
                engine.enqueue(ConnectionEngine.Request(id: id, commands: commands, timeout: timeout) { result in
                    continuation.resume(with: result)
                })
            }
        } onCancel: {
            engine.cancel(id)
        }
    }
}

/// The state machine behind `RedisConnection`, run by its dedicated thread.
final class ConnectionEngine: @unchecked Sendable {
    // Safe to share: `state` is behind a Mutex; `socket`, `usedScripts` and `reconnectAttempt`
    // are touched only by the one dedicated thread that runs `run()`.
    struct Request {
        let id: UInt64
        let commands: [RedisCommand]
        let timeout: Duration
        let complete: @Sendable (Result<[RESPValue], RedisError>) -> Void
    }

    private struct State {
        var queue: [Request] = []
        var closed = false
        var running = false
        var cancelled: Set<UInt64> = []
        var nextID: UInt64 = 0
        /// Where the sentinels announced the master moved, until the thread acts on it.
        var movedTo: RedisEndpoint.Address?
    }

    let configuration: RedisConfiguration
    let logger: Logger
    private let state = Mutex(State())
    private let workPipe = WakePipe()
    private let interruptPipe = WakePipe()
    private var socket: RedisSocket?
    /// Where `socket` is connected (for Sentinel: the master it found).
    private var address: RedisEndpoint.Address?
    private var usedScripts: [ObjectIdentifier: RedisScript] = [:]

    init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    func makeRequestID() -> UInt64 {
        state.withLock { $0.nextID += 1; return $0.nextID }
    }

    func enqueue(_ request: Request) {
        let rejection: RedisError? = state.withLock { state in
            if state.closed { return RedisError(.closed, "the connection is closed") }
            if state.cancelled.remove(request.id) != nil { return RedisError(.cancelled, "cancelled before it was sent") }
            state.queue.append(request)
            return nil
        }
        if let rejection { request.complete(.failure(rejection)) } else { workPipe.wake() }
    }

    /// Cancels a request: dropped if still queued; if it is the only one in flight (a
    /// blocking wait), the wait is interrupted and the connection dropped.
    func cancel(_ id: UInt64) {
        let dropped: Request? = state.withLock { state in
            if let index = state.queue.firstIndex(where: { $0.id == id }) {
                return state.queue.remove(at: index)
            }
            state.cancelled.insert(id)
            return nil
        }
        if let dropped {
            dropped.complete(.failure(RedisError(.cancelled, "cancelled before it was sent")))
        } else {
            interruptPipe.wake()
        }
    }

    /// Marks the engine as run; false when it ran (or runs) already.
    func claimRun() -> Bool {
        state.withLock { state in
            defer { state.running = true }
            return !state.running
        }
    }

    /// The sentinels announced that the master moved: the connection goes there before its
    /// next command, and a blocking wait on the old master is interrupted.
    func masterMoved(to address: RedisEndpoint.Address) {
        state.withLock { $0.movedTo = address }
        workPipe.wake()
        interruptPipe.wake()
    }

    /// Whether an announced move means this connection must leave its server; clears it.
    private func mustMove() -> Bool {
        guard let moved = state.withLock({ state in defer { state.movedTo = nil }; return state.movedTo }) else { return false }
        return moved != address
    }

    /// Stops the thread; queued requests fail with `.closed` (at once when no thread runs).
    func close() {
        let queued = state.withLock { state in
            state.closed = true
            defer { state.queue = [] }
            return state.queue
        }
        for request in queued { request.complete(.failure(RedisError(.closed, "the connection is closed"))) }
        workPipe.wake()
        interruptPipe.wake()
    }

    // MARK: - The thread

    func run() {
        while var batch = nextBatch() {
            // A server that closed an idle connection (restart, timeout) is noticed before
            // anything is written, so a command that was never sent never fails for it.
            if let socket, !socket.isUsableWhenIdle() { self.socket = nil }
            if socket != nil, mustMove() {
                socket = nil
                logger.info("leaving the old Redis master", metadata: ["redis.endpoint": "\(configuration.endpointDescription)"])
            }
            if socket == nil, !connect(failing: &batch) { continue }
            process(batch)
        }
        socket = nil
        let leftovers = state.withLock { state in
            defer { state.queue = [] }
            return state.queue
        }
        for request in leftovers { request.complete(.failure(RedisError(.closed, "the connection is closed"))) }
    }

    /// Waits for work; nil once closed.
    private func nextBatch() -> [Request]? {
        while true {
            let batch: [Request]? = state.withLock { state in
                if state.closed { return nil }
                if state.queue.isEmpty { return [] }
                let count = min(state.queue.count, 1024)
                let batch = Array(state.queue.prefix(count))
                state.queue.removeFirst(count)
                state.cancelled.subtract(batch.map(\.id))  // cancelled after dequeue: handled in flight
                return batch
            }
            guard let batch else { return nil }
            if !batch.isEmpty { return batch }
            workPipe.wait(timeout: nil)
            workPipe.drain()
        }
    }

    private var isClosed: Bool { state.withLock { $0.closed } }

    /// Connects, retrying with backoff until `reconnectDeadline`; on failure fails `batch`.
    /// Requests cancelled meanwhile end at once with `.cancelled`.
    private func connect(failing batch: inout [Request]) -> Bool {
        let deadline = ContinuousClock.now + configuration.reconnectDeadline
        var attempt = 0
        var lastError = RedisError(.connectionFailed, "not connected")
        while !isClosed {
            do {
                let (fresh, reached) = try RedisSocket.open(configuration, endpoint: configuration.endpoint)
                socket = fresh
                address = reached
                _ = mustMove()  // an announcement made before this connect is in the address found
                // A connection that breaks (or times out) while the scripts are loaded again is
                // a failed attempt like any other: the batch waits for the next one.
                try reloadScripts()
                if attempt > 0 { logger.info("reconnected to Redis", metadata: ["redis.endpoint": "\(configuration.endpointDescription)"]) }
                return true
            } catch {
                socket = nil
                lastError = error
                if error.isSetupError { break }  // retrying cannot help
            }
            let delay = configuration.backoff(attempt: attempt)
            attempt += 1
            if ContinuousClock.now + delay > deadline { break }
            if attempt == 1 {
                logger.warning("Redis unreachable, retrying", metadata: ["redis.endpoint": "\(configuration.endpointDescription)",
                                                                     "error": "\(lastError.message)"])
            }
            interruptPipe.wait(timeout: delay)
            interruptPipe.drain()
            let cancelled = state.withLock { state in Set(batch.map(\.id).filter { state.cancelled.remove($0) != nil }) }
            if !cancelled.isEmpty {
                for request in batch where cancelled.contains(request.id) {
                    request.complete(.failure(RedisError(.cancelled, "cancelled while waiting for Redis")))
                }
                batch.removeAll { cancelled.contains($0.id) }
                if batch.isEmpty { return false }
            }
        }
        if isClosed { lastError = RedisError(.closed, "the connection is closed") }
        for request in batch { request.complete(.failure(lastError)) }
        return false
    }

    /// After a reconnect the server may be new (restarted): load every script used so far.
    /// - Throws: `RedisError` when the connection breaks or the replies do not come in time.
    private func reloadScripts() throws(RedisError) {
        guard let socket, !usedScripts.isEmpty else { return }
        let scripts = Array(usedScripts.values)
        for script in scripts { try socket.append(["SCRIPT", "LOAD", script.source].map(\.redisBytes)) }
        let deadline = ContinuousClock.now + configuration.commandTimeout
        try socket.flush(deadline: deadline)
        for script in scripts {
            if let sha = try socket.readReply(deadline: deadline, interruptFD: nil).string { script.remember(sha: sha) }
        }
    }

    /// Loads a script that has no SHA yet, synchronously, before it is used in a batch.
    private func load(_ script: RedisScript, on socket: RedisSocket) throws(RedisError) {
        try socket.append(["SCRIPT", "LOAD", script.source].map(\.redisBytes))
        let deadline = ContinuousClock.now + configuration.commandTimeout
        try socket.flush(deadline: deadline)
        let reply = try socket.readReply(deadline: deadline, interruptFD: nil)
        if case .error(let text) = reply {
            throw RedisError(.server, "script \(script.name) does not load: \(text)")
        }
        guard let sha = reply.string else { throw RedisError(.protocolError, "SCRIPT LOAD gave no SHA") }
        script.remember(sha: sha)
        usedScripts[ObjectIdentifier(script)] = script
    }

    private func process(_ incoming: [Request]) {
        guard let socket else {
            for request in incoming { request.complete(.failure(RedisError(.connectionLost, "not connected to Redis"))) }
            return
        }
        var answered = 0  // requests of `batch` completed, always a prefix
        var batch: [Request] = []
        batch.reserveCapacity(incoming.count)
        var examined = 0  // requests of `incoming` whose scripts have been loaded or refused
        do {
            // Load scripts this connection has not used yet. A script Redis refuses (a Lua
            // error) fails only the requests that call it; the connection stays up.
            for request in incoming {
                var refusal: RedisError?
                for command in request.commands {
                    if let script = command.script, script.sha == nil || usedScripts[ObjectIdentifier(script)] == nil {
                        do {
                            try load(script, on: socket)
                        } catch where error.kind == .server {
                            refusal = error
                        }
                    }
                }
                if let refusal { request.complete(.failure(refusal)) } else { batch.append(request) }
                examined += 1
            }
            if batch.isEmpty { return }
            for request in batch {
                for command in request.commands { try socket.append(command.words()) }
                if let wait = waitCommand(for: request) { try socket.append(wait) }
            }
            try socket.flush(deadline: ContinuousClock.now + configuration.commandTimeout)
            // The first call of the pipeline that met NOSCRIPT (scripts flushed meanwhile).
            // Redis ran everything after it already; requests from that one on are completed
            // only once the tail has been sent again (`resend`).
            var stale: Position?
            var replies: [[RESPValue]] = []
            replies.reserveCapacity(batch.count)
            for (requestIndex, request) in batch.enumerated() {
                let deadline = ContinuousClock.now + request.timeout
                var values: [RESPValue] = []
                values.reserveCapacity(request.commands.count)
                for (commandIndex, command) in request.commands.enumerated() {
                    let value = try read(deadline: deadline, alone: batch.count == 1 ? request.id : nil)
                    if stale == nil, Self.isNoScript(value, command) { stale = Position(request: requestIndex, command: commandIndex) }
                    values.append(value)
                }
                try readAcknowledgements(of: request, into: &values, after: deadline)
                replies.append(values)
                if stale == nil {
                    request.complete(.success(values))
                    answered += 1
                }
            }
            // Another flush may come during a resend: a few rounds, then NOSCRIPT stays the reply.
            var rounds = 0
            while let from = stale, rounds < 3 {
                rounds += 1
                stale = try resend(from: from, of: batch, into: &replies, on: socket)
            }
            for index in answered..<batch.count { batch[index].complete(.success(replies[index])) }
            answered = batch.count
            // A Sentinel master demoted under us answers READONLY (and ends blocking waits
            // with UNBLOCKED): the callers retry, and the next command asks the sentinels again.
            if configuration.sentinel != nil, replies.joined().contains(where: Self.isDemotion) {
                logger.info("the Redis server is a replica now: asking the sentinels again")
                self.socket = nil
            }
        } catch {
            self.socket = nil
            if error.kind != .cancelled {
                logger.debug("Redis connection dropped", metadata: ["error": "\(error.message)"])
            }
            let failure = error.kind == .timeout || error.kind == .cancelled || error.kind == .connectionLost
                ? error : RedisError(.connectionLost, error.message)
            // In flight, or waiting for a resend that broke off: they may have run.
            for request in batch[answered...] { request.complete(.failure(failure)) }
            // Requests not examined yet (the failure came while loading scripts) fail too.
            for request in incoming[examined...] { request.complete(.failure(failure)) }
        }
    }

    /// A call of a batch: its request's index, and the command's index in that request.
    private struct Position {
        let request: Int
        let command: Int
    }

    /// `WAIT n ms` after a request with a command that awaits replicas, when the
    /// configuration asks for some.
    private func waitCommand(for request: Request) -> [[UInt8]]? {
        guard configuration.waitReplicas > 0, request.commands.contains(where: \.awaitsReplicas) else { return nil }
        return ["WAIT", String(configuration.waitReplicas), String(configuration.waitTimeout.wholeMilliseconds)].map(\.redisBytes)
    }

    /// Reads the reply of the `WAIT` sent after `request` (if one was); with fewer
    /// acknowledgements than asked, each successful reply of a command that awaited them
    /// becomes an `UNREPLICATED` error: the write is on the master only. (Not Redis's own
    /// `NOREPLICAS`, which means a write was refused.)
    private func readAcknowledgements(of request: Request, into values: inout [RESPValue],
                                      after deadline: ContinuousClock.Instant) throws(RedisError) {
        guard waitCommand(for: request) != nil else { return }
        let reply = try read(deadline: deadline + configuration.waitTimeout, alone: nil)
        let text: String
        if case .error(let refusal) = reply {
            // An ACL without +wait, say: no confirmation at all, and the reason why.
            text = "UNREPLICATED WAIT was refused (\(refusal)), so no replica confirmed the write: a failover now could lose it"
        } else {
            let acknowledged = reply.int ?? 0
            guard acknowledged < configuration.waitReplicas else { return }
            text = "UNREPLICATED only \(acknowledged) of \(configuration.waitReplicas) replicas acknowledged the write within "
                + "\(configuration.waitTimeout.wholeMilliseconds) ms: a failover now could lose it"
        }
        for (index, command) in request.commands.enumerated() where command.awaitsReplicas && values.count > index {
            if case .error = values[index] { continue }
            values[index] = .error(text)
        }
    }

    private static func isDemotion(_ reply: RESPValue) -> Bool {
        if case .error(let text) = reply { return text.hasPrefix("READONLY") || text.hasPrefix("UNBLOCKED") }
        return false
    }

    private static func isNoScript(_ reply: RESPValue, _ command: RedisCommand) -> Bool {
        if case .error(let text) = reply, text.hasPrefix("NOSCRIPT"), command.script != nil { return true }
        return false
    }

    /// Scripts vanished (SCRIPT FLUSH) under the call at `from`, and Redis ran the rest of the
    /// pipeline without it. Loads the scripts of the tail again, then sends that call and every
    /// later one of the batch (later requests too) once more, in order, so the effects end in
    /// the pipeline's order; their replies replace the first ones. Calls after `from` run twice.
    /// - Returns: the first call of the tail that met NOSCRIPT again, if any.
    private func resend(from: Position, of batch: [Request], into replies: inout [[RESPValue]],
                        on socket: RedisSocket) throws(RedisError) -> Position? {
        func tail(of request: Int) -> Range<Int> {
            (request == from.request ? from.command : 0)..<batch[request].commands.count
        }
        var loaded = Set<ObjectIdentifier>()
        for request in from.request..<batch.count {
            for command in batch[request].commands[tail(of: request)] {
                if let script = command.script, loaded.insert(ObjectIdentifier(script)).inserted { try load(script, on: socket) }
            }
        }
        for request in from.request..<batch.count {
            for command in batch[request].commands[tail(of: request)] { try socket.append(command.words()) }
            if let wait = waitCommand(for: batch[request]) { try socket.append(wait) }
        }
        try socket.flush(deadline: ContinuousClock.now + configuration.commandTimeout)
        var again: Position?
        for request in from.request..<batch.count {
            let deadline = ContinuousClock.now + batch[request].timeout
            for index in tail(of: request) {
                let value = try read(deadline: deadline, alone: batch.count == 1 ? batch[request].id : nil)
                if again == nil, Self.isNoScript(value, batch[request].commands[index]) {
                    again = Position(request: request, command: index)
                }
                replies[request][index] = value
            }
            try readAcknowledgements(of: batch[request], into: &replies[request], after: deadline)
        }
        return again
    }

    /// Reads one reply; a cancelled lone request (a blocking wait) is interrupted.
    private func read(deadline: ContinuousClock.Instant, alone: UInt64?) throws(RedisError) -> RESPValue {
        guard let socket else { throw RedisError(.connectionLost, "not connected") }
        while true {
            do {
                return try socket.readReply(deadline: deadline, interruptFD: alone == nil ? nil : interruptPipe.readFD)
            } catch where error.kind == .cancelled {
                interruptPipe.drain()
                let stop = state.withLock { state in
                    state.closed || (alone.map { state.cancelled.remove($0) != nil } ?? false)
                }
                if stop { throw RedisError(.cancelled, "cancelled while waiting for Redis") }
                if mustMove() { throw RedisError(.connectionLost, "the Redis master moved (Sentinel failover)") }
            }
        }
    }
}
