// imagequeue-bench: measures ImageQueue next to the ceilings redis-benchmark measures in the same
// run, and prints one markdown table. Not a test: it measures. Build in release mode and run it
// against a Redis nobody else is using:
//
//   swift build -c release --product imagequeue-bench && swift build -c release --product imagequeue
//   .build/release/imagequeue-bench --redis redis://127.0.0.1:6390 --worker .build/release/imagequeue
//
// Every key it writes is under a prefix of its own and deleted at the end of its section.
// `imagequeue-bench --help` lists the options and the sections; `peer enqueue|bulk N` is the
// enqueue side of ops/bench/peers.py.

import DedicatedThreads
import Foundation
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// What every section gets: the options, the Redis, the report and the ceilings.
struct BenchContext: Sendable {
    let options: BenchOptions
    let redisConfiguration: RedisConfiguration
    let probe: RedisProbe
    let report: Report
    let ceilings: Ceilings
    let redisPid: Int32?

    /// redis-server's CPU seconds so far, when it runs on this machine.
    func redisCPU() -> Double? { redisPid.flatMap(ProcFS.cpuSeconds) }
}

extension RedisProbe: @unchecked Sendable {}  // RedisClientProtocol and RedisEndpoint are Sendable.

func runBench(_ options: BenchOptions) async -> Int32 {
    let redisConfiguration: RedisConfiguration
    do {
        var configuration = try RedisConfiguration(url: options.redisURL)
        configuration.waitReplicas = options.waitReplicas
        redisConfiguration = configuration
    } catch {
        progress("imagequeue-bench: \(error)")
        return 2
    }
    let connection = makeRedisClient(configuration: redisConfiguration)
    let status = try? await withRunning([connection]) {
        await runBench(options, connection: connection, redisConfiguration: redisConfiguration)
    }
    return status ?? 1
}

/// The bench on a running connection.
func runBench(_ options: BenchOptions, connection: any RedisClientProtocol, redisConfiguration: RedisConfiguration) async -> Int32 {
    let loadBefore = Machine.loadAverage()
    let probe = RedisProbe(redis: connection, endpoint: redisConfiguration.endpoint)
    let report = Report()
    let version: String
    let redisPid: Int32?
    do {
        version = try await probe.info("server")["redis_version"] ?? "?"
        redisPid = try await probe.localPid()
    } catch {
        progress("imagequeue-bench: cannot reach Redis at \(connection.endpointDescription): \(error)")
        return 1
    }
    progress("imagequeue-bench: Redis \(version) at \(connection.endpointDescription)")
    if redisPid == nil { report.note("Redis is not a local process: no Redis CPU figures.") }

    var ceilings = Ceilings()
    if options.sections.contains(.ceilings) {
        ceilings = await Ceilings.measure(redisConfiguration.endpoint, probe: probe, report: report)
    }
    let context = BenchContext(options: options, redisConfiguration: redisConfiguration, probe: probe, report: report,
                               ceilings: ceilings, redisPid: redisPid)
    let sections: [(Section, @Sendable (BenchContext) async throws -> Void)] = [
        (.enqueue, EnqueueSection.run), (.noop, EndToEndSection.run), (.latency, LatencySection.run),
        (.claim, ClaimCostSection.run), (.memory, MemorySection.run),
    ]
    var failures = 0
    for (section, body) in sections where options.sections.contains(section) {
        do {
            try await body(context)
        } catch {
            failures += 1
            report.add(Row(figure: "section \(section.rawValue)", value: "failed", reference: "\(error)", verdict: .missed))
        }
    }
    print(report.render(machine: Machine.line(redisVersion: version, loadBefore: loadBefore)))
    return failures == 0 ? 0 : 1
}

/// Parses the command line and runs the bench or the peer command; returns the exit status.
func entry(_ arguments: [String]) async -> Int32 {
    do {
        if arguments.first == "peer" {
            let options = try PeerOptions(Array(arguments.dropFirst()))
            do {
                try await PeerCommand.run(options)
                return 0
            } catch {
                progress("imagequeue-bench peer: \(error)")
                return 1
            }
        }
        return await runBench(try BenchOptions(arguments))
    } catch {
        progress("imagequeue-bench: \(error.message)\n\n\(BenchOptions.usage)")
        return 2
    }
}

BrokenPipes.ignore()  // a closed Redis connection fails a call, not the process
exit(await entry(Array(CommandLine.arguments.dropFirst())))
