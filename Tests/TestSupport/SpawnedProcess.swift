import ChildProcess
import Foundation
import Synchronization
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A program running in the background, started with `posix_spawn` with an empty signal
/// mask and default handlers, so a SIGTERM a test sends reaches it.
///
/// The threads Swift tasks run on block SIGTERM and SIGINT, and a child inherits its
/// spawning thread's mask. Foundation's `Process` on this toolchain resets the mask (checked:
/// `SigBlk` 0 in the child), but that is its implementation's choice; spawning here makes
/// the signal tests independent of it, and lets the test own the reaping. Output is read as
/// it comes by dedicated threads, the exit is collected by another, and every wait polls
/// with `Task.sleep`: nothing here blocks the cooperative pool.
public final class SpawnedProcess: Sendable {
    /// How a process ended.
    public enum Termination: Equatable, Sendable, CustomStringConvertible {
        /// `exit(status)`.
        case exited(Int32)
        /// Killed by this signal.
        case signalled(Int32)

        public var description: String {
            switch self {
            case .exited(let status): "exited \(status)"
            case .signalled(let signal): "killed by signal \(signal)"
            }
        }
    }

    private struct State {
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        /// Both streams in the order their bytes arrived.
        var output: [UInt8] = []
        var openStreams = 2
        var termination: Termination?
    }

    /// The child's process id.
    public let pid: pid_t
    /// What it was started as, for messages.
    public let commandLine: String
    private let state = SharedState()

    /// Starts `executable` with exactly `arguments` and `environment`; stdin is /dev/null.
    /// - Throws: `TestSetupError` when the pipes or the process cannot be made.
    public init(_ executable: String, _ arguments: [String], environment: [String: String]) throws {
        commandLine = ([executable] + arguments).joined(separator: " ")
        // Close-on-exec from the start, so no child another thread spawns meanwhile can
        // inherit a write end (that would hold our reads open past the worker's exit).
        // Glibc's overlay lacks pipe2, hence a socket pair: one end per direction is used.
        let outChannel = try Self.closeOnExecChannel()
        let errChannel = try Self.closeOnExecChannel()

        let spawned = Result { try spawnChild(executable, arguments, environment: environment,
                                              stdout: outChannel[1], stderr: errChannel[1]) }
        close(outChannel[1])
        close(errChannel[1])
        let child: pid_t
        do {
            child = try spawned.get()
        } catch {
            close(outChannel[0])
            close(errChannel[0])
            throw error
        }
        pid = child
        Self.running.withLock { _ = $0.insert(child) }
        read(outChannel[0], isStandardError: false)
        read(errChannel[0], isStandardError: true)
        reap()
    }

    /// A connected socket pair made close-on-exec atomically: [read end, write end].
    private static func closeOnExecChannel() throws -> [Int32] {
        var descriptors: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &descriptors) == 0 else {
            throw TestSetupError("socketpair failed (errno \(errno))")
        }
        shutdown(descriptors[0], Int32(SHUT_WR))
        shutdown(descriptors[1], Int32(SHUT_RD))
        return descriptors
    }

    deinit {
        // Never leave a worker behind: it would keep claiming jobs under the test's prefix.
        if termination == nil { kill(pid, SIGKILL) }
    }

    /// Reads one stream to its end on a thread of its own (a blocking read: never on the
    /// cooperative pool, nor on Dispatch's global queues, whose threads that pool shares).
    private func read(_ descriptor: Int32, isStandardError: Bool) {
        Thread.detachNewThread { [state] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                let chunk = buffer[0..<count]
                state.withLock { state in
                    if isStandardError { state.stderr += chunk } else { state.stdout += chunk }
                    state.output += chunk
                }
            }
            close(descriptor)
            state.withLock { $0.openStreams -= 1 }
        }
    }

    /// Waits for the child's exit on a thread of its own and records how it ended.
    private func reap() {
        Thread.detachNewThread { [state, pid] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
            // WIFEXITED / WEXITSTATUS / WTERMSIG, which Glibc's Swift overlay does not export.
            let signal = status & 0x7f
            let termination: Termination = signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
            SpawnedProcess.running.withLock { _ = $0.remove(pid) }
            state.withLock { $0.termination = termination }
        }
    }

    /// Everything written to stdout so far.
    public var stdout: String { state.withLock { String(decoding: $0.stdout, as: UTF8.self) } }
    /// Everything written to stderr so far.
    public var stderr: String { state.withLock { String(decoding: $0.stderr, as: UTF8.self) } }
    /// stdout and stderr together, in arrival order.
    public var output: String { state.withLock { String(decoding: $0.output, as: UTF8.self) } }
    /// How the process ended, or nil while it runs.
    public var termination: Termination? { state.withLock { $0.termination } }
    /// Whether the process still runs.
    public var isRunning: Bool { termination == nil }

    /// Sends a signal (SIGTERM, SIGKILL, …) unless the process has already ended.
    public func send(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits until the process has ended and both streams are read to their end.
    /// - Throws: `TestSetupError` (after SIGKILL) when it does not end within `timeout`
    ///   seconds; the limit only keeps a broken program from hanging the suite.
    @discardableResult
    public func waitForExit(timeout: Double = 30) async throws -> Termination {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < deadline {
            let (termination, openStreams) = state.withLock { ($0.termination, $0.openStreams) }
            if let termination, openStreams == 0 { return termination }
            try await Task.sleep(for: .milliseconds(20))
        }
        kill(pid, SIGKILL)
        throw TestSetupError("\(commandLine) did not exit within \(timeout) s; it printed:\n\(output)")
    }

    /// Waits until stdout+stderr contain `text`; returns false if the process ended or the
    /// deadline passed first.
    public func waitForOutput(containing text: String, timeout: Double = 30) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < deadline {
            let (printed, ended) = state.withLock { ($0.output, $0.termination != nil && $0.openStreams == 0) }
            if String(decoding: printed, as: UTF8.self).contains(text) { return true }
            if ended { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return output.contains(text)
    }

    /// The state the reading and reaping threads share with the tests; a class of its own so
    /// those threads do not keep the `SpawnedProcess` (whose deinit kills the child) alive.
    private final class SharedState: Sendable {
        private let mutex = Mutex(State())
        func withLock<R>(_ body: (inout State) -> R) -> R { mutex.withLock { body(&$0) } }
    }

    /// Processes still running; killed when the test process exits, so none outlives a run.
    private static let running: Mutex<Set<pid_t>> = {
        atexit {
            for pid in SpawnedProcess.running.withLock({ $0 }) { kill(pid, SIGKILL) }
        }
        return Mutex([])
    }()
}

/// Starts a child process the way every test should (`ChildProcess.spawnChild`: an empty
/// signal mask and default handlers, stdin from /dev/null, stdout and stderr to the given
/// descriptors or /dev/null, no other inherited descriptor). Returns the pid; the caller
/// reaps it.
/// - Throws: `TestSetupError` when the process cannot be started.
public func spawnChild(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                       stdout: Int32? = nil, stderr: Int32? = nil) throws -> pid_t {
    inProcessSetUp()
    do {
        return try ChildProcess.spawnChild(executable, arguments, environment: environment, stdout: stdout, stderr: stderr)
    } catch {
        throw TestSetupError("cannot start \(executable) (\(error))")
    }
}
