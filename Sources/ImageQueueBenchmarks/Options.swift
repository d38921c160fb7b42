#if canImport(Glibc)
import Glibc
#endif

/// The sections of a benchmark run, in the order they run.
enum Section: String, CaseIterable, Sendable {
    case ceilings, enqueue, noop, latency, claim, memory

    /// Accepts the name or the 1-based number of a section.
    init?(argument: String) {
        if let number = Int(argument), (1...Section.allCases.count).contains(number) {
            self = Section.allCases[number - 1]
        } else if let section = Section(rawValue: argument.lowercased()) {
            self = section
        } else {
            return nil
        }
    }
}

/// A command-line mistake: printed with the usage, exit status 2.
struct UsageError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// `imagequeue-bench [--redis URL] [--worker PATH] ...`: what to measure and how much.
struct BenchOptions: Sendable {
    var redisURL = "redis://127.0.0.1:6379"
    var workerBinary: String?
    var jobs = 20_000
    var concurrency = 256
    var sections = Set(Section.allCases)
    var latencySamples = 5_000
    var claims = 5_000
    var largePending = 1_000_000
    var idleSeconds = 30
    var images = 20
    var flush = false
    var waitReplicas = 0

    static let usage = """
        usage: imagequeue-bench --redis URL --worker PATH-TO-imagequeue-worker [options]
               imagequeue-bench peer enqueue|bulk N --redis URL [--concurrency C]

        Measures ImageQueue against a Redis nobody else is using (every figure next to the ceiling
        redis-benchmark measures in the same run) and prints one markdown table. Build it in release mode.

        options:
          --redis URL             the Redis to measure (default redis://127.0.0.1:6379)
          --worker PATH           the worker for the noop, latency and memory sections: imagequeue-worker,
                                  or imagequeue (then run as `imagequeue worker`)
          --jobs N                jobs for the enqueue and no-op sections (default 20000)
          --concurrency C         the no-op worker's --concurrency and the model's limit (default 256)
          --only LIST             comma-separated sections, by name or number:
                                  1 ceilings, 2 enqueue, 3 noop, 4 latency, 5 claim, 6 memory
          --latency-samples N     enqueue→claim samples (default 5000)
          --claims N              claims per pending size in the claim section (default 5000)
          --large-pending N       the large queue of the claim section (default 1000000)
          --idle-seconds S        how long the idle worker's Redis commands are counted (default 30)
          --images N              10 MiB images the memory section generates (default 20)
          --flush                 the server is ours: FLUSHDB instead of deleting keys one prefix at a time
          --wait-replicas N       WAIT for N replicas after every script that changes a job, as
                                  IMAGEQUEUE_REDIS_WAIT_REPLICAS does (the worker processes take that
                                  variable from the environment); default 0

        peer enqueue N / peer bulk N: the ImageQueue row of the shared peers harness. Sets the flux
        model's concurrency limit to C (default 1), enqueues N no-op jobs (one call each, or batches
        of 1000), and prints {"seconds": <time of the enqueue loop>} as its last line.
        """

    init(_ arguments: [String]) throws(UsageError) {
        var index = 0
        func value(_ flag: String) throws(UsageError) -> String {
            index += 1
            guard index < arguments.count else { throw UsageError("\(flag) needs a value") }
            return arguments[index]
        }
        func count(_ flag: String, _ range: ClosedRange<Int>) throws(UsageError) -> Int {
            let text = try value(flag)
            guard let number = Int(text), range.contains(number) else {
                throw UsageError("\(flag) must be a whole number from \(range.lowerBound) to \(range.upperBound), not \(text.prefix(40))")
            }
            return number
        }
        while index < arguments.count {
            let flag = arguments[index]
            switch flag {
            case "--redis": redisURL = try value(flag)
            case "--worker": workerBinary = try value(flag)
            case "--jobs": jobs = try count(flag, 100...10_000_000)
            case "--concurrency": concurrency = try count(flag, 1...100_000)
            case "--latency-samples": latencySamples = try count(flag, 10...10_000_000)
            case "--claims": claims = try count(flag, 500...1_000_000)
            case "--large-pending": largePending = try count(flag, 2_000...100_000_000)
            case "--idle-seconds": idleSeconds = try count(flag, 1...3600)
            case "--images": images = try count(flag, 1...1000)
            case "--flush": flush = true
            case "--wait-replicas": waitReplicas = try count(flag, 0...100)
            case "--only":
                var chosen = Set<Section>()
                for name in try value(flag).split(separator: ",") {
                    guard let section = Section(argument: String(name)) else {
                        throw UsageError("unknown section \(name.prefix(40)) (sections: \(Section.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    chosen.insert(section)
                }
                guard !chosen.isEmpty else { throw UsageError("--only needs at least one section") }
                sections = chosen
            case "-h", "--help", "help":
                print(Self.usage)
                exit(0)
            default:
                throw UsageError("unknown argument \(flag.prefix(60))")
            }
            index += 1
        }
        let needWorker: [Section] = [.noop, .latency, .memory]
        if workerBinary == nil, !sections.isDisjoint(with: needWorker) {
            throw UsageError("--worker PATH-TO-imagequeue-worker is needed for the noop, latency and memory sections (or choose others with --only)")
        }
        if let workerBinary, access(workerBinary, X_OK) != 0 {
            throw UsageError("--worker \(workerBinary.prefix(200)) is not an executable file")
        }
    }
}

/// `imagequeue-bench peer enqueue|bulk N --redis URL [--concurrency C]`.
struct PeerOptions: Sendable {
    enum Mode: String, Sendable { case enqueue, bulk }
    var mode: Mode
    var count: Int
    var redisURL = "redis://127.0.0.1:6379"
    var concurrency = 1
    var prefix = "iq"

    /// `MODE N` and the flags, in any order.
    init(_ arguments: [String]) throws(UsageError) {
        var positional: [String] = []
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            index += 1
            guard word.hasPrefix("--") else {
                positional.append(word)
                continue
            }
            guard index < arguments.count else { throw UsageError("\(word.prefix(60)) needs a value") }
            let text = arguments[index]
            index += 1
            switch word {
            case "--redis": redisURL = text
            case "--prefix": prefix = text
            case "--concurrency":
                guard let number = Int(text), number >= 1 else { throw UsageError("--concurrency must be a whole number of at least 1") }
                concurrency = number
            default: throw UsageError("unknown argument \(word.prefix(60))")
            }
        }
        guard positional.count == 2, let mode = Mode(rawValue: positional[0]) else {
            throw UsageError("peer needs a mode and a count: peer enqueue N or peer bulk N")
        }
        guard let count = Int(positional[1]), (1...100_000_000).contains(count) else {
            throw UsageError("peer \(mode.rawValue) needs a job count from 1 to 100000000, not \(positional[1].prefix(40))")
        }
        self.mode = mode
        self.count = count
    }
}
