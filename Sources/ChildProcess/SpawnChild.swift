#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `posix_spawn` refused to start a process.
public struct SpawnFailure: Error, CustomStringConvertible, Sendable {
    /// `posix_spawn`'s status (an errno value).
    public let status: Int32
    public var description: String { "error \(status)" }
}

/// Starts a child process with a clean slate: an empty signal mask and default handlers
/// (Swift's threads block some signals, and a child inherits that mask), stdin from
/// /dev/null, stdout and stderr to the given descriptors (or /dev/null), and no other
/// inherited descriptor where the C library can close them (a long-lived child holding the
/// write end of someone's pipe would keep that reader waiting). `arguments` follow argv[0],
/// which is `executable`; `environment` nil passes this process's own. Returns the pid; the
/// caller reaps it.
/// - Throws: `SpawnFailure` when the process cannot be started.
public func spawnChild(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                       stdout: Int32? = nil, stderr: Int32? = nil) throws(SpawnFailure) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    if let stdout { posix_spawn_file_actions_adddup2(&actions, stdout, 1) } else {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    }
    if let stderr { posix_spawn_file_actions_adddup2(&actions, stderr, 2) } else {
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    }
    if let closeFrom = addCloseFrom { _ = closeFrom(&actions, 3) }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
    defer { envp?.forEach { free($0) } }
    var child: pid_t = 0
    let status = envp == nil
        ? posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        : posix_spawn(&child, executable, &actions, &attributes, argv, envp!)
    guard status == 0 else { throw SpawnFailure(status: status) }
    return child
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which its Swift module
/// does not export (it is declared for _GNU_SOURCE only); nil on an older glibc.
private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
private let addCloseFrom: AddCloseFrom? = {
    guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(symbol, to: AddCloseFrom.self)
}()
