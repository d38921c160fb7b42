#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small pool of named OS threads for short blocking calls (one HTTP transfer each):
/// started on demand, reused, and never more than `limit`. A call that finds every thread
/// busy and the pool at its limit waits in line for the next free thread (each call bounds
/// its own duration, a transfer by its timeout). Idle threads stay, waiting for work.
public final class ThreadPool: @unchecked Sendable {
    // Safe to share: every stored var is read and written under `mutex` only.
    private let name: String
    private let limit: Int
    private let stackSize: Int
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let workReady = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var work: [(number: Int, body: @Sendable () -> Void)] = []
    private var next = 0  // the index in `work` of the oldest waiting call
    private var calls = 0
    private var threads = 0
    private var idle = 0

    /// A pool whose threads are named `name-1`, `name-2`… (at most 15 bytes show).
    public init(name: String, limit: Int, stackSize: Int = 512 * 1024) {
        self.name = name
        self.limit = max(1, limit)
        self.stackSize = stackSize
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(workReady, nil)
    }

    // A pool lives as long as the process (its threads hold it); no deinit tears it down.

    /// The number of threads started so far.
    public var threadCount: Int { locked { threads } }

    /// Runs `body` on one of the pool's threads, at once when one is free or may be started,
    /// else once one is free.
    /// - Throws: `DedicatedThread.StartFailure` when the pool has no thread and the system
    ///   refuses one (`body` is then not run).
    public func run(_ body: @escaping @Sendable () -> Void) throws(DedicatedThread.StartFailure) {
        let (call, start) = locked { () -> (Int, Int?) in
            calls += 1
            work.append((calls, body))
            if idle >= work.count - next {
                pthread_cond_signal(workReady)
                return (calls, nil)
            }
            guard threads < limit else { return (calls, nil) }  // waits for a busy thread
            threads += 1
            return (calls, threads)
        }
        guard let number = start else { return }
        do {
            try DedicatedThread.start(name: "\(name)-\(number)", stackSize: stackSize) { self.serve() }
        } catch {
            let orphaned = locked { () -> Bool in
                threads -= 1
                // A running thread takes the call in its turn; with none, it is taken back.
                guard threads == 0, let index = work[next...].firstIndex(where: { $0.number == call }) else { return false }
                work.remove(at: index)
                return true
            }
            if orphaned { throw error }
        }
    }

    /// A pool thread's life: take the oldest call, run it, wait for the next.
    private func serve() {
        while true {
            let body = locked { () -> @Sendable () -> Void in
                while next == work.count {
                    idle += 1
                    pthread_cond_wait(workReady, mutex)
                    idle -= 1
                }
                let body = work[next].body
                next += 1
                if next == work.count {
                    work.removeAll(keepingCapacity: true)
                    next = 0
                }
                return body
            }
            body()
        }
    }

    private func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }
}
